# tests/sudo.sh: running things as root, for the scripts that install (sourced). Needs nothing
# but bash, so that tests/install-deps.sh can use it before anything is installed.

# sudo_if_needed CMD...: runs CMD as root (directly, or through sudo).
sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# can_sudo: whether sudo_if_needed can work here: root, or a sudo that needs no password, or one
# that can ask for it on a terminal.
can_sudo() {
    [ "$(id -u)" -eq 0 ] && return 0
    command -v sudo >/dev/null || return 1
    sudo -n true 2>/dev/null || [ -t 0 ]
}
