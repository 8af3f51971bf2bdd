"""The clinic's natalizumab worklist: every patient of a cohort, assessed from population data.

A nightly batch (``pml-risk worklist``): a SMART Backend Services token, a FHIR Bulk Data Group
export (or NDJSON files a health system already has), the resources staged per patient in SQLite
inside a private temporary folder, each patient assessed through ``smart_app.service`` exactly as
the app and ``pml-risk assess`` do, and one row per patient written as CSV, JSON and HTML.

Modules: ``ndjson`` (streamed, bounded line reader), ``staging`` (group by patient without
holding the export in memory), ``rows`` (assessment → worklist row), ``output`` (the three
files), ``auth`` (backend token), ``export`` (Bulk Data client), ``fallback`` (per-patient
searches for types the server cannot export), ``run`` (the whole run, PHI folder included).
"""
