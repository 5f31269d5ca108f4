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
            "UnsupportedOperation",
            "__version__",
            "current_task",
            "hookimpl",
        ]
    )
    for name in fluxqueue.__all__:
        assert hasattr(fluxqueue, name), name


def test_plugin_api_is_pinned() -> None:
    """The one import location for plugin authors: every name a broker or serializer
    plugin needs, and nothing else."""
    from fluxqueue import plugin_api

    assert plugin_api.__all__ == [
        # registering a plugin
        "Register",
        "hookimpl",
        # the broker contract: the whole, and its groups
        "Aborts",
        "Broker",
        "Coordination",
        "QueueAdmin",
        "StateStore",
        "Transport",
        "WorkerRegistry",
        # what a broker receives and returns
        "AbortOutcome",
        "BrokerStats",
        "DeadLetter",
        "Delivery",
        "Message",
        "QueueStats",
        "State",
        "WorkerInfo",
        # helpers a broker needs
        "DEFAULT_VISIBILITY_TIMEOUT",
        "FINAL_STATUSES",
        "check_claim",
        "check_release",
        "check_tally",
        "decode_state",
        "encode_state",
        "float_option",
        "initial_state",
        "mask_url",
        "query_options",
        # serializers
        "Serializer",
        # errors a plugin raises
        "BrokerConnectionError",
        "BrokerError",
        "ConfigurationError",
        "FluxQueueError",
        "MessageError",
        "SerializationError",
        "UnsupportedOperation",
    ]
    for name in plugin_api.__all__:
        assert hasattr(plugin_api, name), name
    assert plugin_api.Broker is fluxqueue.Broker
    assert plugin_api.Serializer is fluxqueue.Serializer
    assert issubclass(plugin_api.UnsupportedOperation, fluxqueue.BrokerError)


def test_the_broker_is_its_groups() -> None:
    """A backend writes 16 methods; every other one has a default (docs/plugins.md)."""
    from fluxqueue import plugin_api

    groups = [
        plugin_api.Transport,
        plugin_api.StateStore,
        plugin_api.Coordination,
        plugin_api.Aborts,
        plugin_api.QueueAdmin,
        plugin_api.WorkerRegistry,
    ]
    assert all(issubclass(plugin_api.Broker, group) for group in groups)
    assert sorted(plugin_api.Broker.__abstractmethods__) == [
        "abort",
        "abort_requested",
        "ack",
        "add_output",
        "claim",
        "dead_letter",
        "enqueue",
        "extend",
        "fetch",
        "get_outputs",
        "get_state",
        "release",
        "requeue",
        "set_state",
        "stats",
        "tally",
    ]


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
