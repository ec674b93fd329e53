"""Security and governance: bucket policies, the IAM policy linter, Postgres roles, per-stage
AWS credentials and the Well-Architected review (docs/security.md)."""
