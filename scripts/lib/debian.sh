# Sourced by the test scripts that need a program from Debian's packages
# (PostgreSQL, Chromium), so that each installs it the same way: only when it
# is missing, only as root, with one `apt-get update` first.
#
# debian_install PACKAGE WHAT: installs PACKAGE, or exits 1 with a message that
# says how to install WHAT by hand when this is not root. Uses the caller's
# `log` function.
debian_install() {
  local package="$1" what="$2"
  if [ "$(id -u)" -ne 0 ]; then
    log "$what is missing, and installing it needs root: run as root, or apt-get install $package"
    exit 1
  fi
  log "installing $what from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "$package" >/dev/null
}
