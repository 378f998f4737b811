"""Directory sync: the SCIM 2.0 service provider per organization (issue 15)."""
