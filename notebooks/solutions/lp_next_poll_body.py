def next_poll_body(connection_id, seqs_received):
    # last_seq says "I have everything up to here" (0: nothing yet). Count up from 1 while
    # nothing is missing: with [1, 2, 4] that is 2, so the server sends 3 again.
    have, last_seq = set(seqs_received), 0
    while last_seq + 1 in have:
        last_seq += 1
    return {"connection_id": connection_id, "last_seq": last_seq}


check_next_poll_body(next_poll_body)
