#!/bin/sh
# ship-nginx-logs.sh - upload rotated nginx logs to S3 for the nginx-cloudwatch-forwarder Lambda.
#
# Usage: ship-nginx-logs.sh FILE...
#
#   FILE: rotated nginx logs, plain or gzip, e.g. what logrotate leaves behind
#   (access.log-20261124T1000.gz, error.log.1, shop.example.com.access.log-20261124.gz,
#   site/access.log.2.gz) or a glob such as /var/log/nginx/*.log-*.gz.
#   Each file is uploaded as gzip to
#
#     s3://$NGINX_LOG_BUCKET/${NGINX_LOG_PREFIX%/}/<instance-id>/<access|error>/YYYY/MM/DD/<name>[.gz]
#
#   or, with NGINX_LOG_KEY_LAYOUT=userid (what the stack's host policy, its HostUploadPolicyArn
#   output, allows: each instance writes only under its own aws:userid),
#
#     s3://$NGINX_LOG_BUCKET/${NGINX_LOG_PREFIX%/}/<role-id>:<instance-id>/<access|error>/YYYY/MM/DD/<name>[.gz]
#
#   - <instance-id> comes from the instance metadata service, IMDSv2 (token PUT, then GET);
#   - <role-id>:<instance-id> (userid only) is the UserId of `aws sts get-caller-identity`
#     (one call per run, which needs no IAM permission but needs STS to be reachable), checked
#     to be AROA...:<instance-id>, the instance profile's own session; anything else (a user's
#     keys, another role or profile) stops the run before any upload;
#   - the log type from nginx's configuration when nginx-cloudwatch-forwarder is installed
#     (NCF_BIN): the live log a file was rotated from is its name without logrotate's
#     suffixes (.N, -YYYYMMDD, -YYYYMMDDHH, -YYYYMMDDTHHMM and other dateext forms, .gz, .zst,
#     ..., in any order) in the same directory, and `nginx-cloudwatch-forwarder nginx-logs`
#     (run once, on the first file that needs it) says whether nginx writes access or error
#     lines to it, and in which log_format. Otherwise (not installed, the configuration cannot
#     be read, or it names no such log) the file name decides: access* -> access,
#     error* -> error. A file neither says is kept, with a warning. Live logs are skipped
#     (names ending in .log, and any file nginx's configuration names: shipping and deleting
#     those would lose what nginx is still writing);
#   - YYYY/MM/DD is the file's modification time, in UTC;
#   - a gzip file (by its magic bytes) is uploaded as it is; any other file is gzipped into a
#     temporary copy (the original is never modified) and ".gz" is appended to the object name.
#   Each object carries S3 user metadata (x-amz-meta-<name>), read once per run:
#     instance-id    the instance ID (as in the key)
#     hostname       the instance's Name tag from IMDSv2 (/latest/meta-data/tags/instance/Name);
#                    when IMDS answers 404 (the instance does not allow tags in metadata, or has
#                    no Name tag), `hostname -f` (else `hostname`, else `uname -n`); any other
#                    IMDS failure falls back the same way, with a warning
#     nginx-version  from `nginx -v` (NGINX_BIN, else nginx on PATH, else /usr/sbin/nginx), e.g.
#                    1.22.1; left out when it cannot tell
#     ncf-log-format on an access log whose log_format nginx's configuration names: the key of
#                    its format object, <prefix><instance-id>/formats/<sha256 of the format>
#                    (<prefix><role-id>:<instance-id>/formats/... with the userid layout),
#                    whose body is the format as ACCESS_LOG_FORMAT takes it (the forwarder
#                    parses the log with it). The format object is put first, once per run and
#                    never replaced (put-object --if-none-match '*'; 412: already there), the
#                    same object the follower (`nginx-cloudwatch-forwarder ship`) puts.
#   Values are percent-encoded UTF-8: every byte outside ! to ~ (space, control bytes, non-ASCII)
#   and % itself become %XX; at most 256 bytes, never cut inside a character.
#   Each upload is tried UPLOAD_ATTEMPTS times with a doubling delay. A file is deleted only
#   after it uploaded (and DELETE_AFTER_UPLOAD=true); a file that did not upload is kept, named
#   in an error, and the other files are still shipped. One line per file goes to stderr.
#
# Configuration (environment; an empty value counts as unset unless noted):
#   NGINX_LOG_BUCKET     S3 bucket name (required)
#   NGINX_LOG_PREFIX     key prefix; default "nginx/". Set but empty: no prefix.
#   NGINX_LOG_KEY_LAYOUT what follows the prefix: "instance" (the instance ID; default) or
#                        "userid" (the instance profile's aws:userid, <role-id>:<instance-id>)
#   IMDS_ENDPOINT        instance metadata service; default http://169.254.169.254
#   AWS_CLI              AWS CLI command (a name or path, no arguments); default "aws"
#   UPLOAD_ATTEMPTS      attempts per file, >= 1; default 5
#   RETRY_DELAY_SECONDS  delay before the 2nd attempt, doubled before each next one; default 2
#   DELETE_AFTER_UPLOAD  "true" or "false"; default true
#   NGINX_BIN            nginx binary for the nginx-version metadata and the configuration;
#                        default nginx on PATH, else /usr/sbin/nginx
#   NCF_BIN              nginx-cloudwatch-forwarder, which reads nginx's configuration; default
#                        nginx-cloudwatch-forwarder on PATH, else
#                        /usr/local/bin/nginx-cloudwatch-forwarder, else none. "none": file
#                        names decide.
#   TMPDIR               where gzipped copies are written; default /tmp
#   The standard AWS variables (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, AWS_CONFIG_FILE, ...)
#   are passed to the AWS CLI untouched.
#
# Exit status: 0 when every file was uploaded or skipped (a file kept because nothing says what
# it is counts as skipped: it has a warning); 1 when any file was kept because it, or its format
# object, did not upload (or it could not be deleted after uploading); 2 on a usage or
# configuration error, when the instance ID cannot be read from IMDS, or (userid layout) when
# STS cannot be reached or answers another principal than the instance profile (nothing is
# uploaded or deleted then). A file denied under the instance layout is named with a hint at
# NGINX_LOG_KEY_LAYOUT=userid.
#
# Needs: a POSIX sh, curl, gzip, od, awk, sed (with -E), mktemp, and date -u -r FILE (GNU coreutils,
# BusyBox and the BSDs have it; otherwise GNU or BSD stat is used to read the modification time).
# Optional: nginx-cloudwatch-forwarder (see NCF_BIN), run as a user that may run `nginx -T`
# (root, as logrotate runs this), for site-named logs and the log_format metadata.
set -eu

me=ship-nginx-logs

say() { printf '%s: %s\n' "$me" "$*" >&2; }
fail() {
    say "error: $*"
    exit 2
}
usage() {
    printf 'usage: %s FILE...\n' "$me"
    printf 'Uploads rotated nginx logs to S3 (see the header of %s for the configuration).\n' "$0"
}

case ${1-} in
-h | --help)
    usage
    exit 0
    ;;
esac
[ "$#" -gt 0 ] || {
    usage >&2
    exit 2
}

# --- configuration -------------------------------------------------------------------------

bucket=${NGINX_LOG_BUCKET-}
[ -n "$bucket" ] || fail "NGINX_LOG_BUCKET is not set: name the S3 bucket to upload to"
case $bucket in
*/* | *[[:space:]]*) fail "NGINX_LOG_BUCKET=\"$bucket\": must be a bucket name, not a URL or path" ;;
esac

prefix=${NGINX_LOG_PREFIX-nginx/}
while :; do
    case $prefix in
    /*) prefix=${prefix#/} ;;
    */) prefix=${prefix%/} ;;
    *) break ;;
    esac
done
[ -z "$prefix" ] || prefix=$prefix/

key_layout=${NGINX_LOG_KEY_LAYOUT:-instance}
case $key_layout in
instance | userid) ;;
*) fail "NGINX_LOG_KEY_LAYOUT=\"$key_layout\": must be instance or userid" ;;
esac

imds=${IMDS_ENDPOINT:-http://169.254.169.254}
imds=${imds%/}
aws_cli=${AWS_CLI:-aws}
attempts=${UPLOAD_ATTEMPTS:-5}
retry_delay=${RETRY_DELAY_SECONDS:-2}
delete_after=${DELETE_AFTER_UPLOAD:-true}

# A whole number of at most 6 digits (far from any arithmetic overflow), printed without
# leading zeros (which the shell's arithmetic would read as octal); fails otherwise.
uint() {
    case $1 in
    '' | *[!0-9]*) return 1 ;;
    esac
    [ "${#1}" -le 6 ] || return 1
    n=$1
    while [ "${#n}" -gt 1 ] && [ "${n#0}" != "$n" ]; do n=${n#0}; done
    printf '%s\n' "$n"
}
if ! attempts=$(uint "$attempts") || [ "$attempts" -lt 1 ]; then
    fail "UPLOAD_ATTEMPTS=\"${UPLOAD_ATTEMPTS-}\": must be a whole number from 1 to 999999"
fi
if ! retry_delay=$(uint "$retry_delay"); then
    fail "RETRY_DELAY_SECONDS=\"${RETRY_DELAY_SECONDS-}\": must be a whole number of seconds (0 to 999999)"
fi
case $delete_after in
true | false) ;;
*) fail "DELETE_AFTER_UPLOAD=\"$delete_after\": must be true or false" ;;
esac
command -v curl >/dev/null 2>&1 || fail "curl is needed to read the instance ID from IMDS"
command -v gzip >/dev/null 2>&1 || fail "gzip is needed"
command -v "$aws_cli" >/dev/null 2>&1 || fail "AWS CLI \"$aws_cli\" not found (set AWS_CLI)"

# The binary that reads nginx's configuration; none: file names decide (ncf_why says why).
ncf_bin=${NCF_BIN-}
ncf_why=
case $ncf_bin in
'')
    if command -v nginx-cloudwatch-forwarder >/dev/null 2>&1; then
        ncf_bin=nginx-cloudwatch-forwarder
    elif [ -x /usr/local/bin/nginx-cloudwatch-forwarder ]; then
        ncf_bin=/usr/local/bin/nginx-cloudwatch-forwarder
    else
        ncf_bin=none
        ncf_why="nginx-cloudwatch-forwarder is not installed (not on PATH nor in /usr/local/bin; set NCF_BIN)"
    fi
    ;;
none) ncf_why="NCF_BIN=none" ;;
*)
    command -v "$ncf_bin" >/dev/null 2>&1 ||
        fail "NCF_BIN=\"$ncf_bin\": not found (a command or a path; none: file names decide)"
    ;;
esac

# Gzipped copies go to a private directory, removed however the script ends.
workdir=$(mktemp -d "${TMPDIR:-/tmp}/$me.XXXXXX") || fail "cannot create a temporary directory"
trap 'rm -rf -- "$workdir"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- instance ID (IMDSv2), read once, on the first file that is to be uploaded ----------------

instance_id=
key_owner= # what follows the prefix in the keys: the instance ID, or the aws:userid
imds_curl() {
    # No proxy for the link-local service; short timeouts; curl retries only transient errors
    # (timeouts, 5xx), not a refusal.
    curl --silent --show-error --fail --noproxy '*' --connect-timeout 2 --max-time 5 \
        --retry 2 --retry-delay 1 "$@"
}
read_instance_id() {
    if ! token=$(imds_curl -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' \
        "$imds/latest/api/token"); then
        fail "IMDSv2 did not issue a session token ($imds/latest/api/token); nothing uploaded, nothing deleted"
    fi
    [ -n "$token" ] ||
        fail "IMDSv2 returned an empty session token ($imds/latest/api/token); nothing uploaded, nothing deleted"
    if ! id=$(imds_curl -H "X-aws-ec2-metadata-token: $token" \
        "$imds/latest/meta-data/instance-id"); then
        fail "IMDSv2 did not return the instance ID ($imds/latest/meta-data/instance-id); nothing uploaded, nothing deleted"
    fi
    hex=${id#i-}
    case $id in
    i-*) ;;
    *) hex=not-hex ;;
    esac
    case $hex in
    '' | *[!0-9a-f]*) hex=not-hex ;;
    esac
    case ${#hex} in
    8 | 17) ;;
    *) fail "IMDS returned \"$id\", which is not an EC2 instance ID (i- and 8 or 17 hex digits); nothing uploaded, nothing deleted" ;;
    esac
    instance_id=$id
    key_owner=$id
    read_host_meta
    [ "$key_layout" != userid ] || read_userid
}

# The userid layout's key segment: the caller's aws:userid (STS GetCallerIdentity's UserId),
# which must be this instance's profile session, AROA<role id>:<instance-id>.
read_userid() {
    sts_err=$workdir/sts.err
    if ! user_id=$("$aws_cli" sts get-caller-identity --query UserId --output text 2>"$sts_err"); then
        cat -- "$sts_err" >&2
        fail "cannot learn this host's aws:userid from STS (aws sts get-caller-identity, for NGINX_LOG_KEY_LAYOUT=userid): the host must reach STS (in a private subnet: an STS VPC endpoint or a NAT gateway); nothing uploaded, nothing deleted"
    fi
    user_id=$(trim "$user_id")
    role_id=${user_id%":$instance_id"}
    role_id=${role_id#AROA}
    case $user_id in
    AROA*":$instance_id") ;;
    *) role_id= ;;
    esac
    case $role_id in
    *[!0-9A-Z]*) role_id= ;;
    esac
    if [ -z "$role_id" ] || [ "${#role_id}" -gt 124 ]; then
        fail "not running with this instance's profile credentials: UserId is \"$user_id\", not AROA...:$instance_id (NGINX_LOG_KEY_LAYOUT=userid keys objects by the instance profile's aws:userid; leave AWS_ACCESS_KEY_ID, AWS_PROFILE and the like unset on the host); nothing uploaded, nothing deleted"
    fi
    key_owner=$user_id
    say "key layout userid: keys start $prefix$key_owner/"
}

# --- host metadata, read with the instance ID ------------------------------------------------
# (Functions share the script's variables: names here must not be those of ship().)

# Percent-encodes every byte outside ! to ~ and %; at most 256 bytes, whole characters only
# (the same rule as the follower's, crates/ncf-ship/src/host.rs).
meta_value() {
    printf '%s' "$1" | od -A n -t u1 -v | awk '
        { for (i = 1; i <= NF; i++) b[n++] = $i }
        END {
            out = ""
            i = 0
            while (i < n) {
                piece = ""
                j = i
                do { # a character: its first byte and its continuation bytes (0x80 to 0xBF)
                    c = b[j] + 0
                    if (c >= 33 && c <= 126 && c != 37) piece = piece sprintf("%c", c)
                    else piece = piece sprintf("%%%02X", c)
                    j++
                } while (j < n && b[j] >= 128 && b[j] < 192)
                if (length(out) + length(piece) > 256) break
                out = out piece
                i = j
            }
            printf "%s", out
        }'
}

# Without leading and trailing white space.
trim() {
    t=$1
    while :; do
        case $t in
        [[:space:]]*) t=${t#?} ;;
        *[[:space:]]) t=${t%?} ;;
        *) break ;;
        esac
    done
    printf '%s' "$t"
}

# One entry of the AWS CLI's JSON map (values are printable ASCII; " and \ escaped).
meta_pair() {
    v=$(printf '%s' "$2" | sed 's/[\\"]/\\&/g')
    printf '"%s":"%s"' "$1" "$v"
}
# The host's entries, the same on every object.
meta_json=
meta_add() {
    meta_json=${meta_json:+$meta_json,}$(meta_pair "$1" "$2")
}

read_host_meta() {
    host_name=
    tag_file=$workdir/name-tag
    if code=$(imds_curl -o "$tag_file" -w '%{http_code}' -H "X-aws-ec2-metadata-token: $token" \
        "$imds/latest/meta-data/tags/instance/Name" 2>"$tag_file.err"); then
        host_name=$(trim "$(cat -- "$tag_file")")
    elif [ "$code" != 404 ]; then
        say "warning: cannot read the Name tag from $imds/latest/meta-data/tags/instance/Name ($(trim "$(cat -- "$tag_file.err")")); using hostname -f"
    fi
    rm -f -- "$tag_file" "$tag_file.err"
    if [ -z "$host_name" ]; then
        host_name=$(hostname -f 2>/dev/null) || host_name=$(hostname 2>/dev/null) || host_name=$(uname -n 2>/dev/null) || host_name=
        host_name=$(trim "$host_name")
    fi

    nginx_bin=${NGINX_BIN-}
    if [ -z "$nginx_bin" ]; then
        if command -v nginx >/dev/null 2>&1; then
            nginx_bin=nginx
        elif [ -x /usr/sbin/nginx ]; then
            nginx_bin=/usr/sbin/nginx
        fi
    fi
    nginx_version=
    if [ -n "$nginx_bin" ]; then
        out=$("$nginx_bin" -v 2>&1 </dev/null) || :
        nginx_version=$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*nginx version:[[:space:]]*//p' | head -n 1 | sed 's/^nginx\///')
        nginx_version=$(trim "$nginx_version")
    fi

    meta_json=
    meta_add instance-id "$(meta_value "$instance_id")"
    [ -z "$host_name" ] || meta_add hostname "$(meta_value "$host_name")"
    [ -z "$nginx_version" ] || meta_add nginx-version "$(meta_value "$nginx_version")"
    say "instance $instance_id, hostname ${host_name:-unknown}, nginx ${nginx_version:-version unknown}"
}

# --- what nginx's configuration says, read once, on the first file that needs it -------------

conf=unread # then loaded or unavailable
conf_list=$workdir/nginx-logs
conf_formats=$workdir/formats
read_nginx_logs() {
    conf=unavailable
    [ "$ncf_bin" != none ] || return 0
    conf_err=$workdir/nginx-logs.err
    if "$ncf_bin" nginx-logs --formats-dir "$conf_formats" >"$conf_list" 2>"$conf_err" </dev/null; then
        conf=loaded
        say "nginx's configuration read ($ncf_bin nginx-logs: $(awk 'END { print NR }' "$conf_list") log file path(s))"
        while IFS= read -r conf_note || [ -n "$conf_note" ]; do
            say "$ncf_bin nginx-logs: $conf_note"
        done <"$conf_err"
    else
        conf_rc=$?
        # Its error line (an older binary without nginx-logs: clap's "unrecognized subcommand"),
        # else its last line.
        conf_note=$(sed -n '/^error:/{p;q;}' "$conf_err")
        [ -n "$conf_note" ] || conf_note=$(tail -n 1 "$conf_err")
        conf_note=$(trim "$conf_note")
        ncf_why="$ncf_bin nginx-logs: ${conf_note:-exit status $conf_rc}"
        say "warning: nginx's configuration not read ($ncf_why); file names say the kind (access*, error*)"
    fi
}

# What the configuration says of the file at $1: sets conf_kind (access, error or mixed) and
# conf_sha (the format's SHA-256, or -); fails when it names no such file. Lines are
# KIND<TAB>SHA<TAB>PATH, the path last (it may hold tabs).
conf_lookup() {
    [ "$conf" = loaded ] || return 1
    conf_found=$(P=$1 awk '
        BEGIN { p = ENVIRON["P"] }
        {
            i = index($0, "\t"); rest = substr($0, i + 1); j = index(rest, "\t")
            if (i > 0 && j > 0 && substr(rest, j + 1) == p) {
                print substr($0, 1, i - 1) " " substr(rest, 1, j - 1)
                exit
            }
        }' "$conf_list")
    [ -n "$conf_found" ] || return 1
    conf_kind=${conf_found%% *}
    conf_sha=${conf_found#* }
}

# The configuration's entry for the file named $2 in the directory of $1, as the path is
# written (logical) or with symbolic links resolved (physical).
conf_lookup_beside() {
    case $1 in
    */*) conf_dir=${1%/*} ;;
    *) conf_dir=. ;;
    esac
    [ -n "$conf_dir" ] || conf_dir=/
    for conf_opt in -L -P; do
        conf_abs=$(CDPATH='' cd -- "$conf_dir" 2>/dev/null && pwd "$conf_opt") || continue
        conf_lookup "${conf_abs%/}/$2" && return 0
    done
    return 1
}

# The name of the live log a rotated file was rotated from: without logrotate's suffixes (.N,
# -YYYYMMDD[HH|THHMM|...], -YYYY-MM-DD[...], a compression extension), in any order.
live_name() {
    printf '%s\n' "$1" | sed -E -e ':a' \
        -e 's/(\.[0-9]+|\.(gz|zst|bz2|xz|lz4|lzma|lzo|Z)|-[0-9]{8}([T_-]?[0-9]{2,6})?|-[0-9]{4}-[0-9]{2}-[0-9]{2}([T_-][0-9]{2}([:.-]?[0-9]{2}){0,2})?)$//' \
        -e 'ta'
}

# --- uploads ---------------------------------------------------------------------------------

# Runs "$@" until it succeeds, at most UPLOAD_ATTEMPTS times with a doubling delay; $1 names
# what is uploaded in the retry message.
retrying() {
    what=$1
    shift
    attempt=1
    delay=$retry_delay
    while :; do
        "$@" && return 0
        [ "$attempt" -lt "$attempts" ] || return 1
        say "upload of $what failed (attempt $attempt of $attempts); retrying in ${delay}s"
        sleep "$delay"
        attempt=$((attempt + 1))
        [ "$delay" -ge 3600 ] || delay=$((delay * 2)) # doubling, up to about 2 hours
    done
}

# One put of the format object $1 (body: file $2) that never replaces it; 0 when it is stored
# or already there (412 PreconditionFailed). An AWS CLI too old for --if-none-match puts it
# plainly: the key is the body's hash, so a replacement holds the same bytes.
if_none_match=true
put_new_format() {
    put_err=$workdir/put-format.err
    while :; do
        if [ "$if_none_match" = true ]; then
            "$aws_cli" s3api put-object --bucket "$bucket" --body "$2" \
                --content-type 'text/plain; charset=utf-8' --if-none-match '*' --key "$1" \
                >/dev/null 2>"$put_err" && format_put=stored && return 0
        else
            "$aws_cli" s3api put-object --bucket "$bucket" --body "$2" \
                --content-type 'text/plain; charset=utf-8' --key "$1" \
                >/dev/null 2>"$put_err" && format_put=stored && return 0
        fi
        if grep -q 'PreconditionFailed' "$put_err"; then
            format_put="already there"
            return 0
        fi
        if [ "$if_none_match" = true ] && grep -q 'nknown option.*--if-none-match' "$put_err"; then
            say "warning: $aws_cli has no --if-none-match (an older AWS CLI): format objects are put without it"
            if_none_match=false
            continue
        fi
        cat -- "$put_err" >&2
        return 1
    done
}

# Copies a file, with the CLI's errors kept in $workdir/cp.err (for denied_hint) as well as on
# stderr.
put_file() {
    "$aws_cli" s3 cp --only-show-errors --content-type application/gzip --metadata "$1" "$2" "$3" \
        2>"$workdir/cp.err" && return 0
    put_rc=$?
    cat -- "$workdir/cp.err" >&2
    return "$put_rc"
}

# Says why S3 may have denied an upload under the instance layout (errors in the file $1).
denied_hint() {
    [ "$key_layout" = instance ] || return 0
    grep -q 'AccessDenied' -- "$1" 2>/dev/null || return 0
    say "hint: access denied under the instance key layout: a host whose role has the stack's host policy (the HostUploadPolicyArn output) may write only under $prefix<its aws:userid>/, so set NGINX_LOG_KEY_LAYOUT=userid"
}

# The format objects this run has put (or found there), by hash: " sha sha ".
formats_done=' '

# Puts the format object of hash $1 unless this run did; fails when it could not.
put_format() {
    format_key=$prefix$key_owner/formats/$1
    case $formats_done in
    *" $1 "*) return 0 ;;
    esac
    [ -f "$conf_formats/$1" ] || {
        say "error: nginx-logs wrote no format text for $1"
        return 1
    }
    retrying "format object s3://$bucket/$format_key" put_new_format "$format_key" "$conf_formats/$1" ||
        return 1
    say "format object s3://$bucket/$format_key: $format_put"
    formats_done="$formats_done$1 "
}

# --- one file ------------------------------------------------------------------------------

# YYYY/MM/DD of the file's modification time, in UTC.
utc_day() {
    date -u -r "$1" +%Y/%m/%d 2>/dev/null && return 0
    if mtime=$(stat -c %Y -- "$1" 2>/dev/null); then # GNU stat
        date -u -d "@$mtime" +%Y/%m/%d 2>/dev/null && return 0
    fi
    if mtime=$(stat -f %m -- "$1" 2>/dev/null); then # BSD stat
        date -u -r "$mtime" +%Y/%m/%d 2>/dev/null && return 0
    fi
    return 1
}

is_gzip() {
    [ "$(od -A n -t x1 -N 2 -- "$1" 2>/dev/null | tr -d ' \n')" = 1f8b ]
}

failed=0

# Returns 0 when the file was uploaded (or skipped), 1 when it was kept after a failure.
ship() {
    file=$1
    case $file in
    -*) file=./$file ;; # never taken for an option
    esac
    if [ ! -e "$file" ]; then
        case $file in
        *[*?[]*) say "skipped $file: no file matches" ;;
        *) say "skipped $file: no such file" ;;
        esac
        return 0
    fi
    if [ ! -f "$file" ]; then
        say "skipped $file: not a regular file"
        return 0
    fi
    name=${file##*/}
    case $name in
    *.log)
        say "skipped $file: a live log, not a rotated one"
        return 0
        ;;
    esac
    # The configuration first (the live log this file was rotated from), the name second.
    [ "$conf" != unread ] || read_nginx_logs
    type=
    format_sha=
    live=$(live_name "$name")
    if [ "$conf" = loaded ]; then
        if conf_lookup_beside "$file" "$name"; then
            say "skipped $file: a live log, not a rotated one (nginx writes to it)"
            return 0
        fi
        if [ -n "$live" ] && [ "$live" != "$name" ] && conf_lookup_beside "$file" "$live"; then
            case $conf_kind in
            access | error) type=$conf_kind ;;
            *)
                say "warning: kept $file: nginx writes both access and error lines to $live, which no one parser reads"
                return 0
                ;;
            esac
            [ "$conf_sha" = - ] || format_sha=$conf_sha
        fi
    fi
    if [ -z "$type" ]; then
        case $name in
        access*) type=access ;;
        error*) type=error ;;
        *)
            if [ "$conf" = loaded ]; then
                why="nginx's configuration names no log $live beside it"
            else
                why="nginx's configuration was not read: $ncf_why"
            fi
            say "warning: kept $file: neither its name (access*, error*) nor nginx's configuration says whether it is an access or an error log ($why)"
            return 0
            ;;
        esac
    fi
    if ! day=$(utc_day "$file"); then
        say "error: kept $file: cannot read its modification time"
        return 1
    fi
    [ -n "$instance_id" ] || read_instance_id

    case $name in
    *.gz) object=$name ;;
    *) object=$name.gz ;;
    esac
    if is_gzip "$file"; then
        src=$file
    else
        # Named like the object, so that the CLI's own messages name it too.
        src=$workdir/$object
        if ! gzip -c -- "$file" >"$src"; then
            rm -f -- "$src"
            say "error: kept $file: cannot gzip it into $workdir"
            return 1
        fi
    fi
    url=s3://$bucket/$prefix$key_owner/$type/$day/$object

    file_meta=$meta_json
    if [ -n "$format_sha" ]; then
        # The format first: the forwarder reads it when the log's notification arrives.
        if ! put_format "$format_sha"; then
            [ "$src" = "$file" ] || rm -f -- "$src"
            say "error: kept $file: its format object s3://$bucket/$format_key did not upload after $attempts attempt(s)"
            denied_hint "$workdir/put-format.err"
            return 1
        fi
        file_meta=$file_meta,$(meta_pair ncf-log-format "$(meta_value "$format_key")")
    fi

    uploaded=false
    if retrying "$file" put_file "{$file_meta}" "$src" "$url"; then
        uploaded=true
    fi
    [ "$src" = "$file" ] || rm -f -- "$src"
    if [ "$uploaded" != true ]; then
        say "error: kept $file: upload to $url failed after $attempts attempt(s)"
        denied_hint "$workdir/cp.err"
        return 1
    fi

    if [ "$delete_after" != true ]; then
        say "uploaded $file to $url (kept: DELETE_AFTER_UPLOAD=false)"
    elif rm -f -- "$file"; then
        say "uploaded $file to $url (deleted)"
    else
        say "error: uploaded $file to $url but cannot delete it; it will be uploaded again next time"
        return 1
    fi
}

for f in "$@"; do
    ship "$f" || failed=$((failed + 1))
done

if [ "$failed" -gt 0 ]; then
    say "error: $failed file(s) not shipped and kept (see above)"
    exit 1
fi
