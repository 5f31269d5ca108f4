import fluxqueue


def test_public_api_is_pinned() -> None:
    assert sorted(fluxqueue.__all__) == sorted(
        [
            "AsyncTask",
            "Broker",
            "BrokerConnectionError",
            "BrokerError",
            "ConfigurationError",
            "ContentTypeRefused",
            "Context",
            "CurrentTask",
            "DuplicateTaskError",
            "FluxQueue",
            "FluxQueueError",
            "InvalidTaskError",
            "Message",
            "MessageError",
            "PayloadTooLarge",
            "PluginConflictError",
            "PluginError",
            "PluginLoadError",
            "Priority",
            "Retry",
            "Sender",
            "SerializationError",
            "Serializer",
            "SignatureError",
            "Status",
            "SyncTask",
            "Task",
            "TaskAborted",
            "TaskError",
            "TaskFailed",
            "TaskHandle",
            "TaskOptions",
            "TaskResult",
            "TaskTimeout",
            "UnknownComponentError",
            "UnknownTaskError",
            "__version__",
            "current_task",
            "hookimpl",
        ]
    )
    for name in fluxqueue.__all__:
        assert hasattr(fluxqueue, name), name


def test_every_error_is_a_fluxqueue_error() -> None:
    errors = [
        getattr(fluxqueue, n)
        for n in fluxqueue.__all__
        if n.endswith(("Error", "Refused", "TooLarge"))
    ]
    errors += [fluxqueue.TaskFailed, fluxqueue.TaskAborted, fluxqueue.TaskTimeout, fluxqueue.Retry]
    for error in errors:
        assert issubclass(error, fluxqueue.FluxQueueError), error


def test_status_and_priority_values() -> None:
    assert [s.value for s in fluxqueue.Status] == [
        "PENDING",
        "SCHEDULED",
        "STARTED",
        "RETRYING",
        "SUCCESS",
        "FAILURE",
        "ABORTED",
    ]
    assert [(p.name, p.value) for p in fluxqueue.Priority] == [
        ("CRITICAL", 0),
        ("HIGH", 1),
        ("NORMAL", 2),
        ("LOW", 3),
    ]
    assert fluxqueue.Priority.coerce("critical") is fluxqueue.Priority.CRITICAL
