"""The bundle stage: the CA bundle fetched (``source``), checked against its pin and parsed
(``certificates``), merged with Mozilla's roots (``merge``), kept in the cache (``cache``),
written (``store``) and described in the log (``report``); ``prepare`` runs it and
``settings`` is what the stage needs from the config vars.
"""
