"""Bulk import of a roster (households, residents, contacts, devices) from CSV or XLSX."""
