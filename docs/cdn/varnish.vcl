# Varnish (VCL 4.1; tested with Varnish 7.1) as a caching proxy in front of thumbserver: the same policy as
# docs/cdn/nginx.conf. Replace the placeholders before use (tests/e2e/test_cdn.py does):
#
#   __ORIGIN_HOST__   the origin's address, e.g. 127.0.0.1
#   __ORIGIN_PORT__   its port, e.g. 8000
#
# and start it, for example:
#
#   varnishd -a :80 -f /etc/varnish/thumbserver.vcl -s malloc,1g
#
# docs/cdn/README.md explains every rule; in short:
#   * thumbnails without a format in the URL: Accept is rewritten to one of three values
#     (image/avif, image/webp, */*) before anything else looks at it; the origin's `Vary: Accept`
#     then keeps at most one object per output format, and the origin renders what that Accept asks;
#   * freshness from the origin's Cache-Control; expired objects are kept (beresp.keep) so that
#     Varnish revalidates them with If-None-Match / If-Modified-Since and gets a 304;
#   * errors are never cached;
#   * Range requests for originals go to the origin as they are (pass).
vcl 4.1;

import std;

backend origin {
    .host = "__ORIGIN_HOST__";
    .port = "__ORIGIN_PORT__";
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;   # above the origin's limits.render_timeout_s (10 s by default)
    # Health: the origin's /healthz. Used only to decide whether stale objects may be served
    # (vcl_recv below). .initial = .threshold: healthy from the start, not after the first probes.
    .probe = {
        .url = "/healthz";
        .interval = 5s;
        .timeout = 2s;
        .window = 5;
        .threshold = 3;
        .initial = 3;
    }
}

sub vcl_recv {
    set req.backend_hint = origin;

    # The origin uses no cookies; browsers send the site's cookies to an image host on the same
    # domain anyway, and Varnish's built-in rules would pass (never cache) every such request.
    unset req.http.Cookie;

    # --- Accept normalisation ---------------------------------------------------------------------
    # Thumbnails (`/thumb/{spec}/{path}`; change the prefix if you changed `thumbnails.prefix`)
    # whose spec names no output format depend on Accept. The origin picks the FIRST of its
    # `thumbnails.auto_formats` that Accept names explicitly with q > 0 (`*/*` and `image/*` don't
    # count). The tests below mirror that rule:
    #   * a media range counts when it is exactly image/avif (image/webp), any case, between commas,
    #     with optional parameters, unless they say q=0 (0. 0.000 .0 or empty) or a negative q;
    #   * the order of the two tests IS the preference: keep it the same as the origin's
    #     auto_formats. With the origin's default `[webp]`, delete the avif branch; with `[]`, this
    #     whole block.
    # Limits (clients nobody ships): a non-numeric q (`q=abc`) is 0 for the origin, > 0 here;
    # `q=0e1` or `q=nan` are not recognised as 0; the origin reads the first 4096 characters only.
    # Several Accept header lines are joined first, as the origin does.
    # Whatever the limits, the origin is sent the rewritten Accept, so the object stored for a
    # variant is always that variant.
    # req.url is the raw path as sent, as the origin's router sees it.
    if (req.url ~ "^/thumb/[^/?]+/" &&
        req.url !~ "^/thumb/[^/?]*,(jpeg|png|webp|avif)(,[^/?]*)?/") {
        std.collect(req.http.Accept, ", ");
        if (req.http.Accept ~ "(?i)(^|,)\s*image/avif\s*($|,|;(?!([^,]*;)?\s*q\s*=\s*(-|0*\.?0*\s*($|[;,]))))") {
            set req.http.Accept = "image/avif";
        } elsif (req.http.Accept ~ "(?i)(^|,)\s*image/webp\s*($|,|;(?!([^,]*;)?\s*q\s*=\s*(-|0*\.?0*\s*($|[;,]))))") {
            set req.http.Accept = "image/webp";
        } else {
            # Names no image type: the origin answers the source's family (JPEG, PNG, ...).
            set req.http.Accept = "*/*";
        }
        # From here on Varnish's own Vary handling does the rest: the origin answers these URLs
        # with `Vary: Accept`, and Varnish compares the REWRITTEN Accept, so there are at most
        # three objects per thumbnail (avif, webp, the source's family), whatever browsers send.
    }

    # Range requests for originals: straight to the origin (206, multipart, 416, If-Range handled
    # there), nothing stored. On a miss Varnish would otherwise fetch the whole file (a 100 MB
    # video for its first kilobyte) to cut the range itself. Thumbnails are small: a Range request
    # for one is served from the cached object like any other.
    if (req.http.Range && req.url !~ "^/thumb/") {
        return (pass);
    }

    # Serve expired objects (grace) only while the origin is sick. While it is healthy, an expired
    # object is revalidated before it is served: the client never gets bytes older than max-age.
    if (std.healthy(req.backend_hint)) {
        set req.grace = 0s;
    }
    # Falls through to the built-in vcl_recv: GET/HEAD only, Authorization passes, then lookup.
}

sub vcl_backend_response {
    # Errors are never cached: a 404 of a file about to be uploaded or a 503 "queue full" is asked
    # for again on the next request. (The origin also sends Cache-Control: no-store on every error,
    # which the built-in rules honour; this does not rely on it.) The short-lived hit-for-miss
    # object lets such requests go to the origin in parallel instead of queueing behind each other;
    # a later cacheable response replaces it at once.
    if (beresp.status >= 400) {
        set beresp.ttl = 5s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # Ranges passed to the origin are never stored (pass does that already; this is a safeguard).
    if (beresp.status == 206) {
        set beresp.uncacheable = true;
        return (deliver);
    }

    # beresp.ttl is the origin's max-age (http.cache_control_*). After it, an object is kept for
    # `keep` more: not served, but its ETag and Last-Modified go to the origin as If-None-Match /
    # If-Modified-Since; a 304 (a stat at the origin, no render) makes it fresh again, a 200 (the
    # source changed) replaces it.
    set beresp.keep = 7d;
    # Stale-if-error: while the origin is sick (see vcl_recv), expired objects may be served for
    # this long.
    set beresp.grace = 6h;
    # Falls through to the built-in rules: no-store / private / no-cache, Set-Cookie and Vary: *
    # are not cached.
}

sub vcl_deliver {
    # HIT or MISS: handy when debugging. (A revalidated object counts as a MISS.)
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
