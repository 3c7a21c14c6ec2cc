"""The Python client against real tuner_server, scheduler_server and worker_server
processes on loopback, deployed as on a cluster: the scheduler on TLS (a certificate
made by openssl here) with a client token and a worker join token. The seed's generator
output, submit, stop, resume with a raised limit, wait, trials, export of the best
trial, errors as AutoCompressError, and refused tokens.

usage: client_test.py RUNFILES_ROOT
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import unittest

import grpc

from autocompress import (AutoCompressError, AutoCompressionExperiment,
                          AutoCompressionSearchSpaceGenerator)

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
TMP = os.environ.get("TEST_TMPDIR", tempfile.mkdtemp())
TOKEN = "py-client-token"


def start(argv):
    """Starts a server and returns (process, grpc port) from its READY line."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        match = re.match(r"READY service=\S+ grpc_port=(\d+)", line)
        if match:
            return process, int(match.group(1))
    raise RuntimeError(f"{argv[0]} exited before READY")


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.processes = []
        cls.ca = f"{TMP}/cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", f"{TMP}/key.pem", "-out", cls.ca],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tuner, tuner_port = start([f"{ROOT}/tuner_service/tuner_server", "--host=127.0.0.1",
                                   "--port=0", "--metrics_port=0"])
        scheduler, port = start([f"{ROOT}/scheduler_service/scheduler_server", "--host=127.0.0.1",
                                 "--port=0", "--metrics_port=0", f"--data_dir={TMP}/scheduler",
                                 f"--tuner_address=127.0.0.1:{tuner_port}",
                                 f"--tls_cert={cls.ca}", f"--tls_key={TMP}/key.pem",
                                 f"--token={TOKEN}", "--join_token=py-join-token"])
        worker, _ = start([f"{ROOT}/worker/worker_server", "--host=127.0.0.1", "--port=0",
                           "--metrics_port=0", f"--scheduler=localhost:{port}",
                           f"--scheduler_tls_ca={cls.ca}", "--join_token=py-join-token",
                           "--worker_id=py-worker", "--cpu_slots=2", "--threads_per_trial=1",
                           f"--work_dir={TMP}/worker"])
        cls.processes = [worker, scheduler, tuner]
        cls.server = f"localhost:{port}"
        # The client token reaches every AutoCompressionExperiment through the environment.
        os.environ["AUTOCOMPRESS_TOKEN"] = TOKEN

    @classmethod
    def tearDownClass(cls):
        for p in cls.processes:
            p.send_signal(signal.SIGTERM)
        for p in cls.processes:
            p.wait(timeout=60)

    def test_generator_reproduces_nnis_dump(self):
        g = AutoCompressionSearchSpaceGenerator()
        config = [{"sparsity": {"_type": "uniform", "_value": [0.01, 0.99]}, "op_types": ["default"]}]
        g.add_config("level", config)
        g.add_config("taylorfo", [{"sparsity": 0.5, "op_types": ["Conv2d"], "op_names": ["conv1", "conv2"]}],
                     sparsifying_training_batches={"_type": "choice", "_value": [1, 2]})
        g.add_config("qat", [{"quant_types": ["weight", "output"], "quant_bits": {"weight": 8, "output": 8},
                              "op_types": ["Conv2d", "Linear"]}])
        self.assertEqual(g.dumps(), {"algorithm_name": {"_type": "choice", "_value": [
            {"_name": "level",
             "config_list::default::::sparsity": {"_type": "uniform", "_value": [0.01, 0.99]}},
            {"_name": "taylorfo",
             "config_list::Conv2d::conv1:conv2::sparsity": {"_type": "choice", "_value": [0.5]},
             "parameter::sparsifying_training_batches": {"_type": "choice", "_value": [1, 2]}},
            {"_name": "qat", "config_list::weight:output::Conv2d:Linear::::quant_bits": {
                "weight": {"_type": "choice", "_value": [8]},
                "output": {"_type": "choice", "_value": [8]}}}]}})
        self.assertEqual(config[0]["op_types"], ["default"])  # not popped, unlike NNI
        with self.assertRaisesRegex(ValueError, "unknown algorithm 'lvel'"):
            g.add_config("lvel", config)

    def experiment(self, max_trials):
        g = AutoCompressionSearchSpaceGenerator()
        g.add_config("level", [{"sparsity": {"_type": "uniform", "_value": [0.3, 0.8]},
                                "op_types": ["default"]}])
        g.add_config("l1", [{"sparsity": {"_type": "uniform", "_value": [0.2, 0.5]},
                             "op_types": ["Conv2d"]}])
        e = AutoCompressionExperiment(server=self.server, tls_ca=self.ca)
        e.config.experiment_name = "python client"
        e.config.trial_concurrency = 1
        e.config.max_trial_number = max_trials
        e.config.search_space = g.dumps()
        e.config.tuner.name = "TPE"
        e.config.tuner.class_args["optimize_mode"] = "maximize"
        e.config.model = f"{ROOT}/worker/testdata/fashion_model.pt"
        e.config.data = {"format": "idx", "train": f"{ROOT}/worker/testdata/fashion_train.tar",
                         "eval": f"{ROOT}/worker/testdata/fashion_test.tar",
                         "mean": [0.286], "std": [0.353], "batch_size": 32}
        e.config.training = {"optimizer": {"name": "sgd", "learning_rate": 0.02},
                             "finetune_epochs": 1}
        e.config.seed = 5
        return e

    def test_submit_stop_resume_wait_trials_export(self):
        e = self.experiment(max_trials=2)
        experiment_id = e.start()
        self.assertTrue(experiment_id)
        e.stop()
        self.assertEqual(e.status()["state"], "EXPERIMENT_STATE_STOPPED")
        e.resume(max_trial_number=3)
        events = []
        state = e.wait(timeout=300, on_event=events.append)
        self.assertEqual(state, "EXPERIMENT_STATE_DONE")
        self.assertTrue(any(ev.HasField("metric") for ev in events))
        everything = e.trials()
        # Three suggested trials and the baseline, which runs first.
        self.assertEqual(len(everything), 4)
        baseline = everything[0]
        self.assertTrue(baseline.get("baseline"), json.dumps(baseline, indent=1))
        self.assertEqual(baseline["state"], "TRIAL_STATE_SUCCEEDED")
        trials = everything[1:]
        succeeded = [t for t in trials if t["state"] == "TRIAL_STATE_SUCCEEDED"]
        self.assertGreaterEqual(len(succeeded), 2, json.dumps(trials, indent=1))
        for t in succeeded:
            self.assertGreater(t["metrics"]["accuracy"], 0.5)
            self.assertIn(t["parameters"]["algorithm_name"]["_name"], ("level", "l1"))
            self.assertAlmostEqual(t["metrics"]["accuracy_drop"],
                                   baseline["metrics"]["accuracy"] - t["metrics"]["accuracy"])
        # One objective: the front is the best trial.
        front = e.pareto()
        self.assertEqual([t["id"] for t in front], [e.status()["best_trial_id"]])
        status = e.status()
        self.assertEqual(status["best_trial_id"],
                         max(succeeded, key=lambda t: t["metrics"]["accuracy"])["id"])
        paths = e.export("best", f"{TMP}/best")
        self.assertEqual(sorted(os.path.basename(p) for p in paths), ["model.pt", "report.json"])
        with open(f"{TMP}/best/report.json") as f:
            self.assertIn("layers", json.load(f))

        # Attaching to it by id from another object.
        again = AutoCompressionExperiment(server=self.server, tls_ca=self.ca,
                                          experiment_id=experiment_id)
        self.assertEqual(len(again.trials()), 4)

    def test_errors_carry_the_servers_code(self):
        e = AutoCompressionExperiment(server=self.server, tls_ca=self.ca,
                                      experiment_id="no-such-experiment")
        with self.assertRaises(AutoCompressError) as caught:
            e.status()
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        bad = self.experiment(max_trials=1)
        bad.config.tuner.name = "no-such-tuner"
        with self.assertRaises(AutoCompressError) as caught:
            bad.start()
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_tokens_and_tls_are_checked(self):
        def status_with(**kwargs):
            e = AutoCompressionExperiment(server=self.server, experiment_id="no-such-experiment",
                                          timeout=5.0, **kwargs)
            with self.assertRaises(AutoCompressError) as caught:
                e.status()
            return caught.exception.code

        # Past the check, the server answers for the (unknown) experiment itself.
        self.assertEqual(status_with(tls_ca=self.ca), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(status_with(tls_ca=self.ca, token="wrong"),
                         grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(status_with(tls_ca=self.ca, token="py-join-token"),
                         grpc.StatusCode.PERMISSION_DENIED)
        saved = os.environ.pop("AUTOCOMPRESS_TOKEN")
        try:
            self.assertEqual(status_with(tls_ca=self.ca), grpc.StatusCode.UNAUTHENTICATED)
        finally:
            os.environ["AUTOCOMPRESS_TOKEN"] = saved
        # Plaintext cannot reach the TLS port.
        self.assertEqual(status_with(), grpc.StatusCode.UNAVAILABLE)
        with self.assertRaises(ValueError):
            AutoCompressionExperiment(server=self.server, tls_ca=f"{TMP}/missing.pem")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
