"""Translations of the course (the Chinese edition): python -m i18n.translate."""
