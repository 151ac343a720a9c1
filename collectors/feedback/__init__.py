"""Feedback intake: bounces, complaints, DMARC and TLS reports, parsed and attributed."""
