"""Sample data recorded through the real services: the sample village's season and sensors for
``dv demo`` (``village_season``, ``village_net``) and one cooperative's oil season for the page
tests, the browser tests and the page benchmark (``oil_season``).

Nothing below the command line and the tests imports this package: it sits above ``trace``,
``iot`` and ``web`` and uses them exactly as the API does.
"""
