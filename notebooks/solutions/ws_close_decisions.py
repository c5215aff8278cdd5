decisions = {
    1000: "give up",  # normal closure: someone ended it on purpose
    1001: "back off",  # going away: the server is shutting down; come back later, jittered
    1006: "reconnect",  # cut, nobody closed it: soon, after a short random delay, and resume
    1008: "give up",  # policy violation: the same client would be refused again
    1009: "give up",  # message too big: resending it loops; split it or tell the user
    1011: "back off",  # internal error: don't hammer a failing server
    1012: "back off",  # service restart: return after a randomized delay
    4000: "give up",  # superseded: another socket resumed this connection
}
check_close_decisions(decisions)
