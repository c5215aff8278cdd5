def last_event_id(connection_id, last_seq):
    return f"{connection_id}:{last_seq}"


check_last_event_id(last_event_id)
