"""Colours of the kiosk, in one place, chosen for contrast and colour-blind safety.

White text on the dark navy background is about 17:1 contrast; the button blue
with white text about 8:1 (WCAG AAA asks for 7:1). Smiley colours step in
lightness as well as hue (dark red, orange, light green, green) and every face
also differs in shape, so colour is never the only cue.
"""

BACKGROUND = (0.05, 0.09, 0.17, 1)
PANEL = (0.10, 0.16, 0.28, 1)
BUTTON = (0.11, 0.30, 0.58, 1)
BUTTON_SELECTED = (1, 1, 1, 1)
TEXT_ON_SELECTED = (0.05, 0.09, 0.17, 1)
WHITE = (1, 1, 1, 1)
MUTED = (0.80, 0.85, 0.92, 1)
WARNING = (1.0, 0.78, 0.25, 1)
OK = (0.45, 0.85, 0.50, 1)
BAD = (1.0, 0.45, 0.42, 1)
FEATURE = (0.10, 0.09, 0.09, 1)

SMILEY_COLOURS = {
    1: (0.80, 0.16, 0.16, 1),  # very unhappy: dark red
    2: (0.98, 0.56, 0.14, 1),  # unhappy: orange
    3: (0.67, 0.85, 0.32, 1),  # happy: light green
    4: (0.13, 0.62, 0.33, 1),  # very happy: green
}
