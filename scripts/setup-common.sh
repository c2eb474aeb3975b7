# shellcheck shell=bash
# The steps scripts/setup-demo and scripts/setup-dev share, sourced by both (never run alone).
# Each step is quick when its work is already done.
#
#   need PACKAGE PROBE...   PACKAGE is missing unless the command PROBE... succeeds.
#   need_demo_packages      the Debian packages the demo runs (scripts/demo).
#   install_missing_packages  as root: installs what need found missing, saying so first;
#                           otherwise: names them and the one command to run as root, exits 1.
#   install_venv LOCK       a virtualenv in .venv holding the hash-pinned packages of LOCK.

missing_packages=()

need() {
	local package=$1
	shift
	"$@" >/dev/null 2>&1 || missing_packages+=("${package}")
}

need_demo_packages() {
	need ruby command -v ruby
	need ruby-actionmailer ruby -e 'require "action_mailer"'
	need ruby-railties ruby -e 'require "rails"'
	need python3-venv python3 -c 'import ensurepip'
}

install_missing_packages() {
	((${#missing_packages[@]})) || return 0
	local command="apt-get update && apt-get install -y --no-install-recommends ${missing_packages[*]}"
	if [[ $(id -u) -ne 0 ]]; then
		echo " !     Missing Debian packages: ${missing_packages[*]}" >&2
		echo " !     Install them as root, then run this again:" >&2
		echo " !       ${command}" >&2
		exit 1
	fi
	echo "-----> Installing Debian packages: ${missing_packages[*]}"
	# apt's own lines only when it fails: the step line above says what happens.
	local log
	log=$(mktemp)
	if ! { apt-get -o DPkg::Lock::Timeout=300 update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
			--no-install-recommends "${missing_packages[@]}"; } >"${log}" 2>&1; then
		tail -n 20 "${log}" >&2
		rm -f "${log}"
		echo " !     apt-get could not install: ${missing_packages[*]}" >&2
		exit 1
	fi
	rm -f "${log}"
	missing_packages=()
}

install_venv() {
	local lock=$1 wanted stamp
	stamp=.venv/.installed-${lock%.lock}.sha256
	wanted=$(sha256sum "${lock}" | cut -d' ' -f1)
	[[ -x .venv/bin/python && "$(cat "${stamp}" 2>/dev/null)" == "${wanted}" ]] && return 0
	if [[ ! -x .venv/bin/python ]]; then
		python3 -m venv .venv
	fi
	echo "-----> Installing the packages pinned in ${lock} into .venv"
	# The lock pins every package with its hashes; --no-deps keeps pip from adding any other.
	.venv/bin/python -m pip install --quiet --disable-pip-version-check \
		--require-hashes --no-deps -r "${lock}"
	echo "${wanted}" >"${stamp}"
}
