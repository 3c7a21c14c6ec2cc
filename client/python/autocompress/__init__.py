"""AutoCompress's Python client.

The seed's NNI user switches with a few changed lines::

    from autocompress import AutoCompressionExperiment, AutoCompressionSearchSpaceGenerator

    generator = AutoCompressionSearchSpaceGenerator()
    generator.add_config('level', [{'sparsity': {'_type': 'uniform', '_value': [0.01, 0.99]},
                                    'op_types': ['default']}])
    generator.add_config('qat', [{'quant_types': ['weight', 'output'],
                                  'quant_bits': {'weight': 8, 'output': 8},
                                  'op_types': ['Conv2d', 'Linear']}])

    experiment = AutoCompressionExperiment(server='127.0.0.1:7400')
    experiment.config.experiment_name = 'auto compression torch example'
    experiment.config.trial_concurrency = 1
    experiment.config.max_trial_number = 10
    experiment.config.search_space = generator.dumps()
    experiment.config.tuner.name = 'TPE'
    experiment.config.tuner.class_args['optimize_mode'] = 'maximize'
    # What the seed's AbstractAutoCompressionModule gave in Python, declared:
    experiment.config.model = 'model.pt'               # TorchScript, torch.jit.save
    experiment.config.data = {'format': 'idx', 'train': 'data/train', 'eval': 'data/t10k'}
    experiment.config.training = {'optimizer': {'name': 'sgd', 'learning_rate': 0.01},
                                  'finetune_epochs': 2}
    experiment.run()                                   # blocks until DONE / STOPPED / FAILED
    print(experiment.trials())
    experiment.export('best', 'best_model/')

The gRPC stubs (autocompress.v1) are generated from the project's protos by
`bazel build //client/python:stubs`; with them under bazel-bin, use
PYTHONPATH=client/python:bazel-bin/client/python.
"""

import pkgutil

# The generated stubs (autocompress/v1) may live in another root (bazel-bin).
__path__ = pkgutil.extend_path(__path__, __name__)

from autocompress.search_space import AutoCompressionSearchSpaceGenerator  # noqa: E402
from autocompress.experiment import (  # noqa: E402
    AutoCompressionExperiment,
    ExperimentConfig,
    AutoCompressError,
)

__all__ = [
    "AutoCompressionSearchSpaceGenerator",
    "AutoCompressionExperiment",
    "ExperimentConfig",
    "AutoCompressError",
]
