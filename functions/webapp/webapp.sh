#!/bin/sh
# webapp: an http-mode service. busybox httpd serves /www; "/" and /cgi-bin/* are CGI
# scripts. It listens on 127.0.0.1:$EPHEMERA_HTTP_PORT (default 8080) so several
# environments can share the host network, each on its own port.
exec httpd -f -p "127.0.0.1:${EPHEMERA_HTTP_PORT:-8080}" -h /www
