meanings = {
    1000: "normal",  # a clean close: don't reconnect
    1001: "going away",  # the server is shutting down: reconnect later
    1008: "policy",  # too many bad frames
    1009: "too big",  # a frame over the limit
    4000: "superseded",  # another socket resumed this connection
}
check_close_codes(meanings)
