"""Game days: rehearse an incident under load and measure time to detect and to recover."""
