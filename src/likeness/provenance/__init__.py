"""likeness.provenance"""
