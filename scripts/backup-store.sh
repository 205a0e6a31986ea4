# shellcheck shell=bash
# Where the backups of scripts/backup-db and scripts/restore-db live: an S3
# bucket and prefix (BACKUP_S3_URI=s3://bucket[/prefix], through the AWS CLI
# v2 at AWS_CLI, default /usr/bin/aws, at S3_ENDPOINT_URL when set) or a local
# directory (BACKUP_DIR). Sourced by both scripts, which set PROG first; not
# a program. Every function dies with "PROG: could not ..." on failure.
#
#   store_init             checks the configuration (exit 2 when bad); the
#                          caller's temporary directory is WORK
#   store_where            the location, for messages
#   store_list             the backup names there, one a line, any order
#   store_put FILE NAME    stores FILE as NAME (complete or not at all)
#   store_get NAME FILE    fetches NAME into FILE
#   store_delete NAME      deletes NAME

PREFIX=signal-factory-
NAME_RE="^${PREFIX}([0-9]{8}T[0-9]{6}Z)\\.dump\$"

die() { echo "$PROG: $*" >&2; exit 1; }
usage_die() { echo "$PROG: $*" >&2; exit 2; }
# last_line FILE: a tool's error on one line: the first line of FILE naming an
# error (pg_dump: error: connection to server ... failed: ...), else its last
# non-empty line.
last_line() {
  local line
  line=$(grep -im1 'error' "$1" 2>/dev/null) || line=$(grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n1) || true
  printf '%s\n' "$line" | tr -s '\t ' '  '
}

store_init() {
  if [ -n "${BACKUP_S3_URI:-}" ] && [ -n "${BACKUP_DIR:-}" ]; then
    usage_die "set BACKUP_S3_URI or BACKUP_DIR, not both"
  fi
  STORE_ERR="$WORK/store.err"
  if [ -n "${BACKUP_DIR:-}" ]; then
    STORE=dir
    return 0
  fi
  [ -n "${BACKUP_S3_URI:-}" ] || usage_die "set BACKUP_S3_URI (s3://bucket/prefix) or BACKUP_DIR"
  [[ "$BACKUP_S3_URI" =~ ^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/(.*))?$ ]] ||
    usage_die "BACKUP_S3_URI must be s3://bucket or s3://bucket/prefix, got \"$BACKUP_S3_URI\""
  STORE=s3
  S3_BUCKET=${BASH_REMATCH[1]}
  S3_PREFIX=${BASH_REMATCH[3]}
  S3_PREFIX=${S3_PREFIX%/}
  [ -z "$S3_PREFIX" ] || S3_PREFIX="$S3_PREFIX/"
  AWS_CLI=${AWS_CLI:-/usr/bin/aws}
  [ -x "$AWS_CLI" ] || usage_die "the AWS CLI $AWS_CLI is not installed (set AWS_CLI)"
  AWS_ARGS=(--cli-connect-timeout 10 --cli-read-timeout 120)
  [ -z "${S3_ENDPOINT_URL:-}" ] || AWS_ARGS+=(--endpoint-url "$S3_ENDPOINT_URL")
  # Bounded retries: an unreachable store fails in seconds, not minutes.
  export AWS_RETRY_MODE=${AWS_RETRY_MODE:-standard} AWS_MAX_ATTEMPTS=${AWS_MAX_ATTEMPTS:-3}
  export AWS_PAGER=""
}

store_where() {
  if [ "$STORE" = dir ]; then echo "$BACKUP_DIR"; else echo "s3://$S3_BUCKET/$S3_PREFIX"; fi
}

aws_do() { "$AWS_CLI" "${AWS_ARGS[@]}" "$@" 2>"$STORE_ERR"; }

store_list() {
  if [ "$STORE" = dir ]; then
    [ -d "$BACKUP_DIR" ] || die "could not list $BACKUP_DIR: no such directory"
    find "$BACKUP_DIR" -maxdepth 1 -type f -name "${PREFIX}*.dump" -printf '%f\n' 2>"$STORE_ERR" ||
      die "could not list $BACKUP_DIR: $(last_line "$STORE_ERR")"
    return 0
  fi
  local out key
  out=$(aws_do s3api list-objects-v2 --bucket "$S3_BUCKET" --prefix "$S3_PREFIX$PREFIX" \
    --query 'Contents[].Key' --output text) ||
    die "could not list $(store_where): $(last_line "$STORE_ERR")"
  for key in $out; do # keys never hold spaces: the prefix and the names are ours
    [ "$key" = None ] || echo "${key#"$S3_PREFIX"}"
  done
}

store_put() { # file name
  if [ "$STORE" = dir ]; then
    mkdir -p "$BACKUP_DIR" 2>"$STORE_ERR" || die "could not create $BACKUP_DIR: $(last_line "$STORE_ERR")"
    # Written beside, then renamed: a reader never sees half a dump under its name.
    if ! { cp "$1" "$BACKUP_DIR/.$2.partial" && sync "$BACKUP_DIR/.$2.partial" &&
      mv -f "$BACKUP_DIR/.$2.partial" "$BACKUP_DIR/$2"; } 2>"$STORE_ERR"; then
      rm -f "$BACKUP_DIR/.$2.partial"
      die "could not write $BACKUP_DIR/$2: $(last_line "$STORE_ERR")"
    fi
    return 0
  fi
  local size stored
  size=$(stat -c %s "$1")
  aws_do s3 cp --only-show-errors "$1" "s3://$S3_BUCKET/$S3_PREFIX$2" ||
    die "could not upload $2 to $(store_where): $(last_line "$STORE_ERR")"
  stored=$(aws_do s3api head-object --bucket "$S3_BUCKET" --key "$S3_PREFIX$2" \
    --query ContentLength --output text) ||
    die "could not check the uploaded $2 in $(store_where): $(last_line "$STORE_ERR")"
  [ "$stored" = "$size" ] || die "could not upload $2 whole: $stored bytes stored of $size"
}

store_get() { # name file
  if [ "$STORE" = dir ]; then
    cp "$BACKUP_DIR/$1" "$2" 2>"$STORE_ERR" || die "could not read $BACKUP_DIR/$1: $(last_line "$STORE_ERR")"
    return 0
  fi
  aws_do s3 cp --only-show-errors "s3://$S3_BUCKET/$S3_PREFIX$1" "$2" ||
    die "could not download $1 from $(store_where): $(last_line "$STORE_ERR")"
}

store_delete() { # name
  if [ "$STORE" = dir ]; then
    rm -f "$BACKUP_DIR/$1" 2>"$STORE_ERR" || die "could not delete $BACKUP_DIR/$1: $(last_line "$STORE_ERR")"
    return 0
  fi
  aws_do s3 rm --only-show-errors "s3://$S3_BUCKET/$S3_PREFIX$1" ||
    die "could not delete $1 from $(store_where): $(last_line "$STORE_ERR")"
}

# store_newest: the newest backup's name by the date in the names ("" when none).
store_newest() {
  local names
  names=$(store_list) || return 1
  printf '%s\n' "$names" | grep -E "$NAME_RE" | sort | tail -n1 || true
}
