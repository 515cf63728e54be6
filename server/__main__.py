from server.cli import main

# Guarded: multiprocessing's forkserver imports the main module again (as __mp_main__) in the
# render processes, where it must not start another server.
if __name__ == "__main__":
    raise SystemExit(main())
