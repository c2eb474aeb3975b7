# shellcheck shell=bash
# Shared by bin/compile and bin/check: find the stack's python3 or explain why there is none.
# Sourced, not run: the caller has set -euo pipefail.

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
