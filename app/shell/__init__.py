"""The window around the features: main window, project browser, workspace model, preferences,
notifications."""
