def accept(last_seq, incoming):
    accepted, duplicates, gaps = [], 0, 0
    for seq in incoming:
        if seq <= last_seq:
            duplicates += 1  # already have it: a redelivery
            continue
        if seq > last_seq + 1:
            gaps += 1  # something in between never came
        accepted.append(seq)
        last_seq = seq
    return accepted, duplicates, gaps


check_dedupe(accept)
