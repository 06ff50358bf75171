"""The synthetic municipality behind ``casehistory.generator``: citizens, delivery, arrival."""
