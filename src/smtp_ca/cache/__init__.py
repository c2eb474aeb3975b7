"""The build cache: its layout, named once (``layout``), the lock that lets one build at a time
use it (``lock``), and the mark that says a directory is this buildpack's own (``owner``).
"""
