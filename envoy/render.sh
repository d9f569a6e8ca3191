#!/bin/sh
# Renders envoy.yaml.tmpl from the environment and prints the result:
#
#   TRAUM_UPSTREAM_HOST=traum-server envoy/render.sh > /tmp/envoy.yaml
#
# Variables (defaults suit a local traum-server on 127.0.0.1:50051):
#   TRAUM_UPSTREAM_HOST   traum-server host name or IP        [127.0.0.1]
#   TRAUM_UPSTREAM_PORT   traum-server gRPC port              [50051]
#   TRAUM_UPSTREAM_WEB_PORT  traum-server web port (the app and
#                         its audio endpoint)                 [8080]
#   ENVOY_LISTEN_ADDRESS  address of the public listener      [0.0.0.0]
#   ENVOY_LISTEN_PORT     port of the public listener         [8088]
#   ENVOY_ADMIN_PORT      admin port, always on 127.0.0.1     [9901]
#   TRAUM_CORS_ORIGINS    browser origins allowed by CORS, as RE2 regexes
#   ENVOY_TLS_CERT        PEM certificate chain: Envoy terminates TLS
#   ENVOY_TLS_KEY         its PEM private key (both or neither)
#   TRAUM_CORS_ORIGIN     exact origins, space-separated, as traum-server's
#                         --cors-origin takes them; when set, they are the
#                         list (escaped into regexes) and TRAUM_CORS_ORIGINS
#                         is ignored
#                         that must match the whole Origin header, separated
#                         by whitespace (a regex may contain a comma, as in
#                         {1,3}, but never a space)
#                         [localhost and 127.0.0.1 on any port, http or https]
#   ENVOY_CONNECT_BRIDGE  1 adds Envoy's Connect-to-gRPC bridge filter, a
#                         work-in-progress Envoy extension              [0]
#
# Only POSIX sh and awk are used, so it runs in the envoyproxy/envoy image,
# in CI and on a laptop alike. Usage: render.sh [TEMPLATE]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
template=${1:-$here/envoy.yaml.tmpl}

: "${TRAUM_UPSTREAM_HOST:=127.0.0.1}"
: "${TRAUM_UPSTREAM_PORT:=50051}"
: "${TRAUM_UPSTREAM_WEB_PORT:=8080}"
: "${ENVOY_LISTEN_ADDRESS:=0.0.0.0}"
: "${ENVOY_LISTEN_PORT:=8088}"
: "${ENVOY_ADMIN_PORT:=9901}"
: "${ENVOY_CONNECT_BRIDGE:=0}"
: "${TRAUM_CORS_ORIGINS:=https?://localhost(:[0-9]+)? https?://127\\.0\\.0\\.1(:[0-9]+)?}"

fail() {
    echo "render.sh: $*" >&2
    exit 64
}

for name in TRAUM_UPSTREAM_PORT TRAUM_UPSTREAM_WEB_PORT ENVOY_LISTEN_PORT ENVOY_ADMIN_PORT; do
    eval "value=\$$name"
    case $value in
        '' | *[!0-9]*) fail "$name must be a port number (got '$value')" ;;
    esac
    [ "$value" -ge 1 ] && [ "$value" -le 65535 ] || fail "$name must be between 1 and 65535 (got $value)"
done
for name in TRAUM_UPSTREAM_HOST ENVOY_LISTEN_ADDRESS; do
    eval "value=\$$name"
    case $value in
        '' | *[!A-Za-z0-9.:_-]*) fail "$name must be a host name or IP address (got '$value')" ;;
    esac
done
case $ENVOY_CONNECT_BRIDGE in
    0 | 1) ;;
    *) fail "ENVOY_CONNECT_BRIDGE must be 0 or 1 (got '$ENVOY_CONNECT_BRIDGE')" ;;
esac
[ -r "$template" ] || fail "cannot read the template $template"

: "${TRAUM_CORS_ORIGIN:=}"
: "${ENVOY_TLS_CERT:=}"
: "${ENVOY_TLS_KEY:=}"
case "$ENVOY_TLS_CERT,$ENVOY_TLS_KEY" in
    ,) ENVOY_TLS=0 ;;
    ?*,?*) ENVOY_TLS=1 ;;
    *) fail "ENVOY_TLS_CERT and ENVOY_TLS_KEY go together: give both or neither" ;;
esac
for name in ENVOY_TLS_CERT ENVOY_TLS_KEY; do
    eval "value=\$$name"
    case $value in
        *[!A-Za-z0-9./_-]*) fail "$name must be a plain file path (got '$value')" ;;
    esac
done
export TRAUM_UPSTREAM_HOST TRAUM_UPSTREAM_PORT TRAUM_UPSTREAM_WEB_PORT ENVOY_LISTEN_ADDRESS ENVOY_LISTEN_PORT ENVOY_ADMIN_PORT \
    TRAUM_CORS_ORIGINS TRAUM_CORS_ORIGIN ENVOY_CONNECT_BRIDGE ENVOY_TLS ENVOY_TLS_CERT ENVOY_TLS_KEY

# Literal replacement (index/substr, not gsub) so that regex metacharacters,
# backslashes and `&` in the values reach the output unchanged.
awk '
function quote(s) {
    gsub(/\047/, "\047\047", s)
    return "\047" s "\047"
}
# An exact origin as an RE2 regex that matches only itself.
function escape(s,    out, i, c) {
    out = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (index("\\.^$|?*+()[]{}", c) > 0) out = out "\\"
        out = out c
    }
    return out
}
function replace(line, name, value,    token, at, out) {
    token = "${" name "}"
    out = ""
    while ((at = index(line, token)) > 0) {
        out = out substr(line, 1, at - 1) value
        line = substr(line, at + length(token))
    }
    return out line
}
BEGIN {
    print "# Rendered by envoy/render.sh from envoy/envoy.yaml.tmpl: edit the template, not this file."
    exact = ENVIRON["TRAUM_CORS_ORIGIN"] !~ /^[ \t\n]*$/
    n = split(exact ? ENVIRON["TRAUM_CORS_ORIGIN"] : ENVIRON["TRAUM_CORS_ORIGINS"], origins, /[ \t\n]+/)
    list = ""
    for (i = 1; i <= n; i++) {
        if (origins[i] == "") continue
        origin = origins[i]
        if (exact) origin = escape(origin)
        list = list (list == "" ? "" : ", ") "{ safe_regex: { regex: " quote(origin) " } }"
    }
    if (list == "") {
        print "render.sh: TRAUM_CORS_ORIGINS lists no origin" > "/dev/stderr"
        exit 64
    }
    values["TRAUM_CORS_ORIGINS_YAML"] = "[" list "]"
    split("TRAUM_UPSTREAM_HOST TRAUM_UPSTREAM_PORT TRAUM_UPSTREAM_WEB_PORT ENVOY_LISTEN_ADDRESS ENVOY_LISTEN_PORT ENVOY_ADMIN_PORT ENVOY_TLS_CERT ENVOY_TLS_KEY", names, " ")
    for (i in names) values[names[i]] = ENVIRON[names[i]]
}
# Lines between `#@if NAME` and `#@end` are kept only when NAME is 1.
/^[ \t]*#@if [A-Z_]+[ \t]*$/ {
    skipping = ENVIRON[$2] != "1"
    next
}
/^[ \t]*#@end[ \t]*$/ {
    skipping = 0
    next
}
skipping { next }
{
    for (name in values) $0 = replace($0, name, values[name])
    if (index($0, "${") > 0) {
        print "render.sh: unknown placeholder in line " NR ": " $0 > "/dev/stderr"
        exit 64
    }
    print
}
' "$template"
