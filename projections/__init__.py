"""Projections: deterministic folds over the journal (KV view, MQTT, EMS). See issue 3."""
