"""Fees (EHDS Art. 62): the schedule, estimates, metering of SPE resources, monthly invoices."""
