"""Answers that do not come from a kiosk over MQTT: the web survey behind a station's QR code
(``web_survey``) and phone or SMS surveys delivered through the import API or a CSV file
(``answers``, ``csv_import``). All of them end in ``fleet_server.ingest.store`` like a kiosk's.
The web page can also ask THL's national questionnaire (``questionnaire``, stored item by item
in its own tables) and take an open comment (``comments``, masked by ``masking`` first); what a
station's page asks is ``web_settings``."""
