"""The HDAB front office: the dataset catalogue (HealthDCAT-AP), data access applications that
become permits, and fees.

    catalogue/     catalogue entries per registered dataset, HealthDCAT-AP export + SHACL validation, search
    applications/  the application workflow (a state table), deadlines, the grant that applies a permit
    fees/          the fee schedule, estimates, metering of SPE resources, monthly invoices (HTML, PDF)
    web/           tornado handlers (API and pages) that the portal service mounts

Everything that changes state goes through one business module per area and writes its audit event
in the same transaction. Must not import `egress`.
"""
