"""The scheduler service (servers; active on the Raft leader only): keeps every enabled job's
next fire time and, at each one, asks the local dispatcher to claim and run the tick."""
