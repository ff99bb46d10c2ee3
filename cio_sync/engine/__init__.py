"""From the file to each record's outcome: one owner per person, the run's loop and its clock's
stamps, the transports' adapters, settling and counting. Prints nothing."""
