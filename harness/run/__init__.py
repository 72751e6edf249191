"""One run (task x variant x seed x sweep point): build, train, evaluate, measure -> one result row."""
