def next_poll_body(connection_id, seqs_received):
    # last_seq acknowledges everything up to it; 0 means "nothing yet".
    return {"connection_id": connection_id, "last_seq": max(seqs_received, default=0)}


check_next_poll_body(next_poll_body)
