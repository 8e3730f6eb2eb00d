#!/bin/sh
# GET /  -> {"service":"webapp","method":"GET","query":"<query string>"}
# POST / -> the request body, echoed back with its Content-Type (raw events land here)
json_escape() { printf '%s' "$1" | sed 's/[\\"]/\\&/g'; }
if [ "$REQUEST_METHOD" = POST ]; then
  printf 'Content-Type: %s\r\n\r\n' "${CONTENT_TYPE:-application/octet-stream}"
  [ "${CONTENT_LENGTH:-0}" -gt 0 ] && head -c "$CONTENT_LENGTH"
  exit 0
fi
printf 'Content-Type: application/json\r\n\r\n'
printf '{"service":"webapp","method":"%s","query":"%s"}\n' \
  "$(json_escape "$REQUEST_METHOD")" "$(json_escape "$QUERY_STRING")"
