def reaction(status, content_type):
    if status is None:  # a network error: no answer at all, so try again
        return "reconnect"
    essence = (content_type or "").split(";")[0].strip().lower()
    if status == 200 and essence == "text/event-stream":
        return "reconnect"  # a stream that ended: reconnect after the retry: time
    return "give up"  # 204, 401, 404, 5xx, a wrong type: fail the connection for good


check_eventsource_reaction(reaction)
