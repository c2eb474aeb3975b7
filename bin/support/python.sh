# shellcheck shell=bash
# Shared by bin/compile, bin/build and bin/check: find the stack's python3 or explain why there
# is none, and (bin/compile, bin/build) keep its bytecode in the buildpack's cache. Sourced, not
# run: the caller has set -euo pipefail.

smtp_ca::find_python() {
	local python
	python=$(command -v python3 || true)
	if [[ -z "${python}" ]]; then
		{
			echo " !     No python3 found on PATH."
			echo " !     This buildpack runs on the python3 of Heroku's build images (heroku-22,"
			echo " !     heroku-24, heroku-26). To build locally, install Python 3.10 or later."
		} >&2
		exit 1
	fi
	echo "${python}"
}

# How bin/compile, bin/build and bin/check run the buildpack: python3 -I -S -c SMTP_CA_RUNNER
# SRC COMMAND ARGS... -I (isolated) ignores every PYTHON* variable (PYTHONPATH, PYTHONHOME,
# PYTHONSTARTUP, ...), the user's site directory and the script's directory; -S keeps the
# machine's site-packages off sys.path, so no .pth file there runs and nothing installed on the
# machine is imported. The runner puts SRC on sys.path by hand; the pinned dependencies are
# added by smtp_ca.pipeline once installed. What runs is the buildpack and its lock, whatever
# the machine or the app's environment holds.
# shellcheck disable=SC2034 # used by the scripts that source this file
SMTP_CA_RUNNER='import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); runpy.run_module("smtp_ca", run_name="__main__", alter_sys=True)'

# Where the build keeps Python bytecode: CACHE_DIR/smtp-ca/pycache, as an absolute path (a
# relative prefix would follow the working directory). CACHE_DIR persists between builds, while
# the buildpack's own directory is a fresh copy on every build, so .pyc files written next to
# its sources would be thrown away with it. Python mirrors each source's absolute path under the
# prefix (the stdlib's and the dependencies' too), and reads .pyc files from there only.
smtp_ca::pycache_prefix() {
	local cache_dir=$1
	if [[ "${cache_dir}" != /* ]]; then
		cache_dir="${PWD}/${cache_dir}"
	fi
	echo "${cache_dir%/}/smtp-ca/pycache"
}

# Compiles the buildpack's modules into the bytecode cache as checked-hash .pyc files, once per
# python3, stack, buildpack path and set of modules (subpackages included: the key lists every
# .py below src/smtp_ca by its relative path, sorted). A timestamp .pyc goes stale whenever the
# buildpack is fetched afresh with new mtimes (a git clone gives every file the time of the
# clone); a checked-hash one only when its source changes, and Python writes it checked-hash
# again when it recompiles it. Best effort: a failure costs compile time later, never the build.
# Returns 1, touching nothing, when the buildpack's cache directory (the prefix's parent) is a
# symbolic link: the caller then gives Python no pycache prefix, and the Python side refuses
# the link by name before anything is removed or written where it points.
smtp_ca::compile_bytecode() {
	local python=$1 prefix=$2 src=$3
	if [[ -L "${prefix%/*}" ]]; then
		return 1
	fi
	local modules
	modules=$(cd "${src}" && find smtp_ca -name '*.py' -print | LC_ALL=C sort | tr '\n' ' ') || true
	# The stack: STACK on classic Heroku, the run image's distro under the CNB lifecycle.
	local stack=${STACK:-${CNB_TARGET_DISTRO_NAME:-}${CNB_TARGET_DISTRO_VERSION:-}}
	local key="${python} ${stack} ${src} ${modules% }"
	local stamp="${prefix}/.checked-hash" compiled=""
	if [[ -r "${stamp}" ]]; then
		IFS= read -r compiled <"${stamp}" || true
	fi
	if [[ "${compiled}" == "${key}" ]]; then
		return 0
	fi
	# Something changed: start the bytecode cache afresh, so that .pyc files of sources that are
	# gone (older buildpack versions, dependencies of an older lock) do not pile up in CACHE_DIR.
	rm -rf "${prefix}" 2>/dev/null || true
	if "${python}" -I -S -X "pycache_prefix=${prefix}" -m compileall -q -f \
		--invalidation-mode checked-hash "${src}" >/dev/null 2>&1; then
		{ printf '%s\n' "${key}" >"${stamp}"; } 2>/dev/null || true
	fi
}
