"""The settings stage: config vars in, one validated, frozen ``Settings`` out (``load``).

Stdlib only, so a typo in a config var fails the build before any download. ``values`` reads
ENV_DIR and parses the primitive values; ``smtp`` an SMTP server's variables; ``ca`` where the
bundle comes from; ``addons`` the servers the mail add-ons' config vars name; ``app_config``
and ``gemfile_lock`` what the app's own files say; ``verify_advice`` the verify-mode advice in
the app's own words.
"""
