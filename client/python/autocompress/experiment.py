"""AutoCompressionExperiment: submit, follow, inspect and export an experiment on a
running AutoCompress scheduler, the way the seed's NNI experiment object is used.

Field names are the experiment file's (client/README.md): NNI v2's in snake_case plus the
declarative model, data, training and export. Every call has a deadline; UNAVAILABLE is
retried with backoff, other errors raise AutoCompressError with the server's code and
message.
"""

import hashlib
import io
import json
import os
import re
import tarfile
import time
import uuid

import grpc
from google.protobuf import json_format

from autocompress.v1 import common_pb2, scheduler_pb2, scheduler_pb2_grpc

_CHUNK = 1 << 20
_FORMATS = {"idx": common_pb2.DATASET_FORMAT_IDX, "tensors": common_pb2.DATASET_FORMAT_TENSORS,
            "image_folder": common_pb2.DATASET_FORMAT_IMAGE_FOLDER,
            "cifar10_binary": common_pb2.DATASET_FORMAT_CIFAR10_BINARY}


class AutoCompressError(Exception):
    """A call failed: `code` is the gRPC status code, the message the server's."""

    def __init__(self, code, message):
        super().__init__(f"{code.name}: {message}")
        self.code = code


class _Algorithm:
    def __init__(self, name=""):
        self.name = name
        self.class_args = {}


class ExperimentConfig:
    def __init__(self):
        self.experiment_name = ""
        self.labels = {}
        self.search_space = None          # NNI's dict, e.g. generator.dumps()
        self.tuner = _Algorithm("tpe")
        self.assessor = _Algorithm()
        self.objective = {}               # {metric, mode}; mode defaults to tuner's optimize_mode
        self.trial_concurrency = 1
        self.max_trial_number = 0
        self.max_experiment_duration = None  # "2h", "90m", seconds
        self.max_trial_duration = None
        self.max_retries = 0
        self.trial_gpu_number = 0
        self.model = None                 # path of a TorchScript model
        self.data = {}                    # {format, train, eval, mean, std, batch_size, ...}
        self.training = {}                # {optimizer: {...}, criterion, evaluator, finetune_epochs, ...}
        self.export = {"model": True, "report": True, "calibration": True}
        self.seed = 0


def _seconds(value, what):
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*([\d.]+)\s*([smhd]?)\s*", str(value))
    if not match:
        raise ValueError(f"{what}: expected a duration such as 90s, 30m, 2h or 1d, got {value!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _mode(text, what):
    lower = str(text).lower()
    if lower in ("maximize", "max"):
        return common_pb2.OPTIMIZE_MODE_MAXIMIZE
    if lower in ("minimize", "min"):
        return common_pb2.OPTIMIZE_MODE_MINIMIZE
    raise ValueError(f"{what}: expected maximize or minimize, got {text!r}")


class AutoCompressionExperiment:
    def __init__(self, server="127.0.0.1:7400", token=None, timeout=30.0, tls=False,
                 root_certificates=None, experiment_id=None, tls_ca=None, tls_cert=None,
                 tls_key=None, tls_server_name=None):
        """`server` is the scheduler's host:port; `experiment_id` attaches to an existing
        experiment instead of creating one.

        Security, as the CLI's flags: `token` (default: $AUTOCOMPRESS_TOKEN) is sent as a
        bearer token with every call; `tls_ca` (a PEM file, or `root_certificates` as
        bytes) verifies the server and turns TLS on, as does `tls=True` with the system
        roots; `tls_cert` and `tls_key` (PEM files) present a client certificate for
        mutual TLS; `tls_server_name` overrides the name checked in the server's
        certificate."""
        self.config = ExperimentConfig()
        self.id = experiment_id
        self._timeout = timeout
        if token is None:
            token = os.environ.get("AUTOCOMPRESS_TOKEN") or None
        self._metadata = [("authorization", f"Bearer {token}")] if token else []

        def read(path, what):
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as error:
                raise ValueError(f"{what} {path}: {error.strerror}") from None

        if tls_ca is not None:
            root_certificates = read(tls_ca, "tls_ca")
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if tls or root_certificates is not None or tls_cert is not None:
            creds = grpc.ssl_channel_credentials(
                root_certificates=root_certificates,
                private_key=read(tls_key, "tls_key") if tls_key else None,
                certificate_chain=read(tls_cert, "tls_cert") if tls_cert else None)
            options = ([("grpc.ssl_target_name_override", tls_server_name)]
                       if tls_server_name else [])
            self._channel = grpc.secure_channel(server, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(server)
        self._experiments = scheduler_pb2_grpc.ExperimentServiceStub(self._channel)
        self._artifacts = scheduler_pb2_grpc.ArtifactServiceStub(self._channel)

    # ---- calls -----------------------------------------------------------------------

    def _call(self, method, request, attempts=5):
        delay = 0.1
        for attempt in range(attempts):
            try:
                return method(request, timeout=self._timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == attempts - 1:
                    raise AutoCompressError(error.code(), error.details()) from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _upload(self, path, kind, name=None):
        with open(path, "rb") as f:
            content = f.read()
        header = scheduler_pb2.UploadHeader(name=name or os.path.basename(path), kind=kind,
                                            sha256=hashlib.sha256(content).hexdigest(),
                                            size_bytes=len(content))

        def parts():
            yield scheduler_pb2.UploadRequest(header=header)
            for i in range(0, len(content), _CHUNK):
                yield scheduler_pb2.UploadRequest(chunk=content[i:i + _CHUNK])

        try:
            return self._artifacts.Upload(parts(), timeout=600, metadata=self._metadata).artifact
        except grpc.RpcError as error:
            raise AutoCompressError(error.code(), f"uploading {path}: {error.details()}") from None

    def _upload_dataset(self, path):
        """A file as it is; a folder, or an IDX prefix (.../train for train-images-idx3-ubyte
        and its labels), as a reproducible tar archive."""
        if os.path.isfile(path):
            return self._upload(path, common_pb2.ARTIFACT_KIND_DATASET)
        members = []
        if os.path.isdir(path):
            for root, _, files in os.walk(path):
                members += [(os.path.join(root, f), os.path.relpath(os.path.join(root, f), path))
                            for f in files]
        else:
            for kind in ("-images-idx3-ubyte", "-labels-idx1-ubyte"):
                found = [path + kind + s for s in ("", ".gz") if os.path.isfile(path + kind + s)]
                if not found:
                    raise ValueError(f"data: {path} is neither a file, a folder nor an IDX prefix")
                members.append((found[0], os.path.basename(found[0])))
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for local, name in sorted(members, key=lambda m: m[1]):
                info = tar.gettarinfo(local, arcname=name)
                info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
                with open(local, "rb") as f:
                    tar.addfile(info, f)
        tmp = f"/tmp/autocompress-py-{os.getpid()}-{os.path.basename(path)}.tar"
        with open(tmp, "wb") as f:
            f.write(buffer.getvalue())
        try:
            return self._upload(tmp, common_pb2.ARTIFACT_KIND_DATASET,
                                os.path.basename(path) + ".tar")
        finally:
            os.remove(tmp)

    # ---- the spec --------------------------------------------------------------------

    def spec(self):
        """The ExperimentSpec of `config`, artifacts not yet uploaded."""
        c = self.config
        if not c.search_space:
            raise ValueError("config.search_space: required (generator.dumps())")
        spec = common_pb2.ExperimentSpec(name=c.experiment_name, seed=int(c.seed))
        spec.labels.update(c.labels)
        spec.search_space_json = (c.search_space if isinstance(c.search_space, str)
                                  else json.dumps(c.search_space))
        args = dict(c.tuner.class_args)
        mode = args.pop("optimize_mode", None)
        spec.tuner.name = c.tuner.name
        spec.tuner.args_json = json.dumps(args)
        if c.assessor.name:
            spec.assessor.name = c.assessor.name
            spec.assessor.args_json = json.dumps(c.assessor.class_args)
        spec.objective.primary.metric = c.objective.get("metric", "accuracy")
        spec.objective.primary.mode = _mode(c.objective.get("mode", mode or "maximize"),
                                            "objective.mode")
        limits = spec.limits
        limits.trial_concurrency = c.trial_concurrency
        limits.max_trial_number = c.max_trial_number
        limits.max_retries = c.max_retries
        for field, value in (("max_experiment_duration", c.max_experiment_duration),
                             ("max_trial_duration", c.max_trial_duration)):
            seconds = _seconds(value, field)
            if seconds is not None:
                getattr(limits, field).seconds = int(seconds)
        spec.trial_resources.gpus = c.trial_gpu_number
        data = spec.recipe.dataset
        fmt = c.data.get("format")
        if fmt not in _FORMATS:
            raise ValueError(f"data.format: expected one of {', '.join(_FORMATS)}, got {fmt!r}")
        data.format = _FORMATS[fmt]
        data.mean.extend(c.data.get("mean", []))
        data.stddev.extend(c.data.get("std", []))
        data.batch_size = c.data.get("batch_size", 64)
        data.eval_batch_size = c.data.get("eval_batch_size", 0)
        data.shuffle = c.data.get("shuffle", True)
        t = c.training
        opt = t.get("optimizer", {})
        spec.recipe.optimizer.name = opt.get("name", "sgd")
        spec.recipe.optimizer.learning_rate = opt.get("learning_rate", 0.01)
        spec.recipe.optimizer.momentum = opt.get("momentum", 0.0)
        spec.recipe.optimizer.weight_decay = opt.get("weight_decay", 0.0)
        spec.recipe.optimizer.nesterov = opt.get("nesterov", False)
        spec.recipe.criterion = t.get("criterion", "cross_entropy")
        spec.recipe.evaluator = t.get("evaluator", "top1_accuracy")
        for field in ("finetune_epochs", "sparsifying_epochs", "max_train_batches",
                      "max_eval_batches", "report_every_batches"):
            setattr(spec.recipe, field, t.get(field, 0))
        e = c.export
        spec.export_options.model = e.get("model", True)
        spec.export_options.report = e.get("report", True)
        spec.export_options.calibration = e.get("calibration", True)
        spec.export_options.keep_best = e.get("keep_best", 0)
        spec.export_options.speedup = e.get("speedup", False)
        return spec

    # ---- lifecycle -------------------------------------------------------------------

    def start(self, request_id=None):
        """Uploads the model and data and creates the experiment; returns its id."""
        c = self.config
        spec = self.spec()
        if not c.model or "eval" not in c.data:
            raise ValueError("config.model and config.data['eval'] are required")
        spec.model.CopyFrom(self._upload(c.model, common_pb2.ARTIFACT_KIND_MODEL))
        spec.recipe.dataset.eval.CopyFrom(self._upload_dataset(c.data["eval"]))
        if c.data.get("train"):
            spec.recipe.dataset.train.CopyFrom(self._upload_dataset(c.data["train"]))
        request = scheduler_pb2.CreateExperimentRequest(spec=spec,
                                                        request_id=request_id or uuid.uuid4().hex)
        self.id = self._call(self._experiments.CreateExperiment, request).experiment.id
        return self.id

    def wait(self, timeout=None, on_event=None):
        """Follows the experiment until it is DONE, STOPPED or FAILED (re-opening the watch
        after the last event seen if the scheduler restarts); returns its final state."""
        end = None if timeout is None else time.time() + timeout
        after = 0
        while True:
            request = scheduler_pb2.WatchExperimentRequest(experiment_id=self.id,
                                                           after_sequence=after)
            try:
                left = None if end is None else max(0.1, end - time.time())
                for event in self._experiments.WatchExperiment(request, timeout=left,
                                                                metadata=self._metadata):
                    after = max(after, event.sequence)
                    if on_event:
                        on_event(event)
                break
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    break
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise AutoCompressError(error.code(), error.details()) from None
                time.sleep(0.5)
        return self.status()["state"]

    def run(self, timeout=None):
        """start() then wait(); like the seed's experiment.run(), it blocks to the end."""
        self.start()
        return self.wait(timeout)

    def _experiment(self):
        request = scheduler_pb2.GetExperimentRequest(experiment_id=self.id)
        return self._call(self._experiments.GetExperiment, request).experiment

    def status(self):
        """The experiment as a dict (state, trial_counts, best_trial_id, ...)."""
        return json_format.MessageToDict(self._experiment(), preserving_proto_field_name=True)

    def stop(self):
        request = scheduler_pb2.StopExperimentRequest(experiment_id=self.id)
        self._call(self._experiments.StopExperiment, request)

    def resume(self, **limits):
        """Resumes a STOPPED or DONE experiment; keyword arguments raise its limits
        (max_trial_number=20, trial_concurrency=4, ...)."""
        request = scheduler_pb2.ResumeExperimentRequest(experiment_id=self.id)
        for name, value in limits.items():
            if name.endswith("_duration"):
                getattr(request.limits, name).seconds = int(_seconds(value, name))
            else:
                setattr(request.limits, name, value)
            request.update_mask.paths.append(name)
        self._call(self._experiments.ResumeExperiment, request)

    def trials(self, order_by="sequence"):
        """Every trial as a dict, with `metrics` (the final report as name -> value)."""
        out, token = [], ""
        while True:
            request = scheduler_pb2.ListTrialsRequest(experiment_id=self.id, order_by=order_by,
                                                      page_token=token)
            page = self._call(self._experiments.ListTrials, request)
            out.extend(self._trial_dict(trial) for trial in page.trials)
            token = page.next_page_token
            if not token:
                return out

    def pareto(self):
        """The Pareto front over the objectives (primary, then secondary): the feasible
        succeeded trials no other one dominates, best primary first, as trials() dicts."""
        response = self._call(self._experiments.ListParetoTrials,
                              scheduler_pb2.ListParetoTrialsRequest(experiment_id=self.id))
        return [self._trial_dict(t) for t in response.trials]

    @staticmethod
    def _trial_dict(trial):
        d = json_format.MessageToDict(trial, preserving_proto_field_name=True)
        d["metrics"] = {m.name: m.value for m in trial.final_report.metrics}
        d["parameters"] = json.loads(trial.parameters_json or "{}")
        return d

    def export(self, trial_id, output_dir):
        """Downloads a trial's results ("best" = the experiment's best trial) into
        `output_dir`, verified by SHA-256; returns the paths written."""
        if trial_id == "best":
            trial_id = self._experiment().best_trial_id
            if not trial_id:
                raise AutoCompressError(grpc.StatusCode.FAILED_PRECONDITION,
                                        f"experiment {self.id} has no succeeded trial yet")
        trial = self._call(self._experiments.GetTrial,
                           scheduler_pb2.GetTrialRequest(trial_id=trial_id)).trial
        os.makedirs(output_dir, exist_ok=True)
        paths = []
        for ref in trial.results:
            digest, chunks = hashlib.sha256(), []
            try:
                for part in self._artifacts.Download(scheduler_pb2.DownloadRequest(sha256=ref.sha256),
                                                     timeout=600, metadata=self._metadata):
                    if part.HasField("chunk"):
                        digest.update(part.chunk)
                        chunks.append(part.chunk)
            except grpc.RpcError as error:
                raise AutoCompressError(error.code(), error.details()) from None
            if digest.hexdigest() != ref.sha256:
                raise AutoCompressError(grpc.StatusCode.DATA_LOSS, f"{ref.name}: digest mismatch")
            path = os.path.join(output_dir, os.path.basename(ref.name) or ref.sha256)
            with open(path + ".partial", "wb") as f:
                f.write(b"".join(chunks))
            os.replace(path + ".partial", path)
            paths.append(path)
        return paths
