# shellcheck shell=bash
# Shared by bin/compile, bin/build and bin/check: find the stack's python3 or explain why there
# is none, and how to run the buildpack with it. Sourced, not run: the caller has set -euo
# pipefail.

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
