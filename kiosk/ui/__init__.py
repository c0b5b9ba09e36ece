"""The kiosk's touch UI (Kivy). Importing this package does not import Kivy.

Kivy opens a window and reads its own config when imported, so only
``kiosk.ui.app`` (imported when the UI actually starts) pulls it in; the
headless kiosk, the simulator and the non-UI tests never load it.
"""
