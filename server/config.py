"""Configuration: config.yaml and `THUMBSERVER_<SECTION>_<KEY>` overrides, parsed once.

`load_settings()` is the only place that reads the file or the environment. It returns a frozen
`Settings` tree that is passed down explicitly; nothing else in the project looks at either.
Every key is optional (the defaults are DESIGN.md's). Anything wrong raises `ConfigError` with
one line that names the key, e.g. ``thumbnails.max_width: must be greater than 0 (got -1)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from server.formats import DEFAULT_QUALITIES, OUTPUT_FORMATS
from server.imaging import FITS, box_problem
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "THUMBSERVER_"

PositiveInt = Annotated[int, Field(gt=0)]
Quality = Annotated[int, Field(ge=1, le=100)]
OutputFormat = Literal[OUTPUT_FORMATS]  # type: ignore[valid-type]
Fit = Literal[FITS]  # type: ignore[valid-type]

_SIZE_RE = re.compile(r"^(?:[0-9]+x[0-9]*|x[0-9]+)$")
_PRESET_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


def _one_path_segment(value: str, example: str, *, dots: bool = False) -> str:
    """`value` if it is "/" and one plain path segment (letters, digits, _ and -, and . when
    `dots`), else ValueError naming `example`."""
    if not re.fullmatch(r"/[A-Za-z0-9_.-]+" if dots else r"/[A-Za-z0-9_-]+", value):
        raise ValueError(f"must be one path segment such as {example}")
    return value


class ConfigError(Exception):
    """A configuration that must not start a server; the message is one line naming the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    # "auto": one worker process per CPU core available to the server (each has its own cache).
    workers: PositiveInt | Literal["auto"] = "auto"
    # Bounds on what slow or numerous clients can hold (uvicorn settings).
    limit_concurrency: PositiveInt = 1000
    timeout_keep_alive: PositiveInt = 5
    # Seconds a request line and headers may take to arrive (httptools only): then 408.
    timeout_request_head: Annotated[float, Field(gt=0)] = 10.0
    backlog: PositiveInt = 2048
    h11_max_incomplete_event_size: PositiveInt = 16384
    # httptools parses about twice as fast as h11. On its own it buffers a request head of any
    # size; server.protocol bounds it by h11_max_incomplete_event_size as h11 does, so it is the
    # default.
    http: Literal["h11", "httptools"] = "httptools"
    # json: one JSON object per request on stdout; text: uvicorn's line; false: none.
    access_log: Literal["json", "text"] | bool = False
    # /docs (Swagger UI from pinned assets served here) and /openapi.json; false: neither.
    docs: bool = True


class StorageSettings(_Section):
    root: Path = Path("./examples/images")
    extensions: tuple[str, ...] = ("jpg", "jpeg", "png", "webp", "gif", "avif", "tif", "tiff", "bmp")

    @field_validator("extensions")
    @classmethod
    def _lowercase_without_dots(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(ext.lower().removeprefix(".") for ext in value)
        if not cleaned or any(not ext or "/" in ext for ext in cleaned):
            raise ValueError("must be a non-empty list of extensions such as [jpg, png]")
        return cleaned


class CacheSettings(_Section):
    # The in-process tier, per worker process.
    max_bytes: PositiveInt = 256 * 1024 * 1024
    # The tier every worker (and, with redis, every node) shares: disk | redis | none.
    shared: Literal["disk", "redis", "none"] = "disk"
    # None: the user's cache folder ($XDG_CACHE_HOME or ~/.cache)/thumbserver; relative: to the config file.
    disk_path: Path | None = None
    disk_max_bytes: PositiveInt = 2 * 1024 * 1024 * 1024
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_ttl_s: PositiveInt = 30 * 24 * 3600
    redis_timeout_s: Annotated[float, Field(gt=0, le=60)] = 0.25

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value


class Preset(_Section):
    width: PositiveInt | None = None
    height: PositiveInt | None = None
    fit: Fit = "contain"

    @model_validator(mode="after")
    def _has_a_side(self) -> Preset:
        if self.width is None and self.height is None:
            raise ValueError("a preset needs width, height or both")
        problem = box_problem(self.width, self.height, self.fit)
        if problem is not None:
            raise ValueError(problem)
        return self


class QualitySettings(_Section):
    """Default quality per lossy output format (`server.formats` registers the defaults)."""

    jpeg: Quality = DEFAULT_QUALITIES["jpeg"]
    webp: Quality = DEFAULT_QUALITIES["webp"]
    avif: Quality = DEFAULT_QUALITIES["avif"]


class ThumbnailSettings(_Section):
    prefix: str = "/thumb"
    max_width: PositiveInt = 4096
    max_height: PositiveInt = 4096
    allowed_sizes: tuple[str, ...] = ()
    # With allowed_sizes: the device pixel ratios and qualities a URL may name (empty: 1x only,
    # and only the configured default qualities): the variants an unsigned URL can make are bounded.
    allowed_dprs: tuple[Annotated[float, Field(ge=1, le=4)], ...] = ()
    allowed_qualities: tuple[Quality, ...] = ()
    presets: dict[str, Preset] = Field(default_factory=lambda: {"small": Preset(width=160, height=160, fit="cover")})
    auto_formats: tuple[Literal["webp", "avif"], ...] = ("webp",)
    quality: QualitySettings = QualitySettings()

    @field_validator("prefix")
    @classmethod
    def _prefix_is_one_segment(cls, value: str) -> str:
        return _one_path_segment(value, "/thumb")

    @field_validator("allowed_sizes")
    @classmethod
    def _sizes_are_bases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for size in value:
            if not _SIZE_RE.fullmatch(size):
                raise ValueError(f"{size!r} is not a size such as 320x240, 320x or x240")
        return value

    @field_validator("presets")
    @classmethod
    def _preset_names(cls, value: dict[str, Preset]) -> dict[str, Preset]:
        for name in value:
            if not _PRESET_NAME_RE.fullmatch(name) or name in {*FITS, *OUTPUT_FORMATS}:
                raise ValueError(f"{name!r} is not a usable preset name (lowercase letters, digits, - and _)")
        return value


class LimitSettings(_Section):
    max_source_pixels: PositiveInt = 50_000_000
    max_source_bytes: PositiveInt = 100 * 1024 * 1024
    render_workers: PositiveInt = 2
    render_queue: Annotated[int, Field(ge=0)] = 64
    render_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    # What renders in flight may hold together (decoded pixels, per server process); a render
    # waits until its peak fits, and one that alone exceeds it is refused (422).
    render_memory_bytes: PositiveInt = 1024 * 1024 * 1024
    # Frames of an animated thumbnail (GIF, WebP); a longer animation gives its first frame.
    max_animation_frames: PositiveInt = 100
    # The address space of each render process (RLIMIT_AS); 0: no cap.
    render_process_memory_bytes: Annotated[int, Field(ge=0)] = 2 * 1024 * 1024 * 1024
    # Decoded sources (intermediates) each render process keeps, so that the other sizes and
    # formats of a source skip its decode; added to the process's address-space cap. 0: none.
    intermediate_bytes: Annotated[int, Field(ge=0)] = 64 * 1024 * 1024
    # Intermediates every render process of the machine shares (files in /dev/shm), so that one
    # source is decoded once per machine rather than once per server process. 0: none.
    host_intermediate_bytes: Annotated[int, Field(ge=0)] = 256 * 1024 * 1024
    # Their folder; default /dev/shm/thumbserver-{uid}/{a name for the image root} (RAM-backed).
    host_intermediate_path: Path | None = None


class HttpSettings(_Section):
    cache_control_originals: str = "max-age=86400"
    cache_control_thumbnails: str = "max-age=604800"
    # ["*"], or the origins allowed to read images from scripts (CORS), e.g. ["https://example.com"].
    cors_origins: tuple[str, ...] = ()
    # The body of /robots.txt; null: 404.
    robots_txt: str | None = "User-agent: *\nAllow: /\n"

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
                raise ValueError(f"{origin!r} is not * nor an origin such as https://example.com")
        if "*" in value and len(value) > 1:
            raise ValueError("* allows every origin: list it alone")
        return value


class MetricsSettings(_Section):
    enabled: bool = True
    path: str = "/metrics"

    @field_validator("path")
    @classmethod
    def _one_segment(cls, value: str) -> str:
        return _one_path_segment(value, "/metrics", dots=True)


class SecuritySettings(_Section):
    """Signed URLs, imgproxy's scheme: keys and salts in hex, paired by position."""

    keys: tuple[str, ...] = ()
    salts: tuple[str, ...] = ()
    signature_size: Annotated[int, Field(ge=1, le=32)] = 32
    sign_originals: bool = False

    @field_validator("keys", "salts")
    @classmethod
    def _hex(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                if not bytes.fromhex(item):
                    raise ValueError
            except ValueError:
                raise ValueError("each must be a non-empty hex string such as 943b421c9eb07c83") from None
        return value

    @model_validator(mode="after")
    def _paired(self) -> SecuritySettings:
        if len(self.keys) != len(self.salts):
            raise ValueError(f"keys and salts are paired by position: {len(self.keys)} keys, {len(self.salts)} salts")
        if self.sign_originals and not self.keys:
            raise ValueError("sign_originals needs keys")
        return self


class InfoSettings(_Section):
    prefix: str = "/info"

    @field_validator("prefix")
    @classmethod
    def _one_segment(cls, value: str) -> str:
        return _one_path_segment(value, "/info")


class BrowseSettings(_Section):
    """The gallery: HTML pages of the image root's folders, and a page per image."""

    enabled: bool = False
    page_size: Annotated[int, Field(ge=1, le=5000)] = 200
    # Image pages are {view_prefix}/{path}: a path of their own, never an original's URL.
    view_prefix: str = "/view"

    @field_validator("view_prefix")
    @classmethod
    def _one_segment(cls, value: str) -> str:
        return _one_path_segment(value, "/view")
class UploadSettings(_Section):
    """`POST {thumbnails.prefix}/{spec}`: a thumbnail of the image in the request body."""

    enabled: bool = False
    max_bytes: PositiveInt = 20 * 1024 * 1024
    # Seconds the whole body may take to arrive (then 408): uvicorn has no such bound.
    read_timeout_s: Annotated[float, Field(gt=0)] = 30.0


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    cache: CacheSettings = CacheSettings()
    thumbnails: ThumbnailSettings = ThumbnailSettings()
    limits: LimitSettings = LimitSettings()
    http: HttpSettings = HttpSettings()
    security: SecuritySettings = SecuritySettings()
    metrics: MetricsSettings = MetricsSettings()
    info: InfoSettings = InfoSettings()
    browse: BrowseSettings = BrowseSettings()

    @model_validator(mode="after")
    def _distinct_prefixes(self) -> Settings:
        prefixes = {"thumbnails.prefix": self.thumbnails.prefix, "info.prefix": self.info.prefix,
                    "browse.view_prefix": self.browse.view_prefix}
        seen: dict[str, str] = {}
        for key, value in prefixes.items():
            if value in seen:
                raise ValueError(f"{key} {value} is already {seen[value]}")
            seen[value] = key
        return self
    uploads: UploadSettings = UploadSettings()


_SECTIONS = tuple(Settings.model_fields)


def load_settings(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build the effective settings: defaults < config file < environment < `overrides` (the CLI).

    A relative `storage.root` in the file is taken relative to the file's folder; from the
    environment or the command line, relative to the working directory. The root must be an
    existing directory; it is stored resolved (absolute, symlinks followed).
    """
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    if config_file is not None:
        raw = _read_yaml(config_file)
        for section, key in (("storage", "root"), ("cache", "disk_path"), ("limits", "host_intermediate_path")):
            # Relative paths in the file are relative to the file's folder.
            value = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
            if isinstance(value, str):
                raw[section][key] = str(config_file.parent / value)
    _merge(raw, _environment_overrides(os.environ if environ is None else environ))
    _merge(raw, {section: dict(values) for section, values in (overrides or {}).items()})
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    root = (base_dir / settings.storage.root).resolve()
    if not root.is_dir():
        raise ConfigError(f"storage.root: {settings.storage.root} is not a directory")
    storage = settings.storage.model_copy(update={"root": root})
    disk_path = settings.cache.disk_path or default_cache_folder(environ if environ is not None else os.environ)
    cache = settings.cache.model_copy(update={"disk_path": (base_dir / disk_path).absolute()})
    return settings.model_copy(update={"storage": storage, "cache": cache})


def default_cache_folder(environ: Mapping[str, str]) -> Path:
    """The user's cache folder for this program: `$XDG_CACHE_HOME/thumbserver` or `~/.cache/thumbserver`."""
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "thumbserver"


def _read_yaml(config_file: Path) -> dict[str, Any]:
    try:
        text = config_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{config_file}: cannot be read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{config_file}: not valid YAML{line}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{config_file}: must be a mapping of sections ({', '.join(_SECTIONS)})")
    return data


def _environment_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """`THUMBSERVER_LIMITS_MAX_SOURCE_BYTES=1000` → {"limits": {"max_source_bytes": 1000}}.

    Values are read as YAML scalars or flow collections, so `[webp, avif]` is a list and `10` an int.
    """
    found: dict[str, dict[str, Any]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        section, _, key = name.removeprefix(ENV_PREFIX).lower().partition("_")
        if section not in _SECTIONS or not key:
            raise ConfigError(f"{name}: not a setting (expected {ENV_PREFIX}<SECTION>_<KEY>, sections: {', '.join(_SECTIONS)})")
        if key not in Settings.model_fields[section].annotation.model_fields:
            raise ConfigError(f"{name}: {section} has no key {key!r}")
        try:
            parsed = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            raise ConfigError(f"{name}: cannot parse value {value!r}") from None
        found.setdefault(section, {})[key] = parsed
    return found


def _merge(into: dict[str, Any], overrides: Mapping[str, Mapping[str, Any]]) -> None:
    for section, values in overrides.items():
        current = into.get(section)
        if current is None:
            into[section] = dict(values)
        elif isinstance(current, dict):
            current.update(values)
        # A non-mapping section is left as it is so that validation names it.


def _describe(exc: ValidationError) -> str:
    """One line for the first problem: the dotted key, what is wrong, and the value given."""
    error = exc.errors()[0]
    # Union members and validators show up in the location as tags such as "constrained-int".
    key = ".".join(
        str(part) for part in error["loc"] if not str(part).startswith(("function-", "literal[", "constrained-"))
    )
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    given = error.get("input")
    if error["type"] not in ("extra_forbidden", "missing") and not isinstance(given, dict):
        message = f"{message} (got {given!r})"
    return f"{key or 'config'}: {message[0].lower()}{message[1:]}"
