"""The Paddle runtime side shared by benchmarking and deployment: the deploy form of a model
as a Paddle Inference program (PIR, :mod:`.program`) or a legacy old-IR program
(:mod:`.legacy`, for Paddle Lite and PaddleSlim), predictors configured with the known IR-pass
workarounds (:mod:`.predictor`), and the check that a runtime computes what eager computes
(:mod:`.compare`), and one interface over the runtimes that serve an export folder --
Paddle Inference, ONNX Runtime, OpenVINO, Paddle Lite (:mod:`.sessions`)."""
from .compare import DEFAULT_ATOL, RTOL, compare_all_outputs, compare_outputs
from .legacy import old_ir_ops, save_legacy
from .onnx_export import export_onnx, no_installs_at_run_time
from .predictor import (KNOWN_PASS_CRASHES, create_predictor, make_config, pass_workarounds,
                        run_predictor, stage_input)
from .program import check_input_size, deploy_form, export_program, program_op_names
from .sessions import (PRECISIONS, RUNTIMES, PrecisionUnsupportedError, RuntimeUnavailableError,
                       Session, artifact_file, check_session, cpu_supports_bf16, open_session,
                       reference_outputs, register_runtime, runtime_status)

__all__ = ["DEFAULT_ATOL", "RTOL", "compare_outputs", "compare_all_outputs", "old_ir_ops",
           "save_legacy", "export_onnx", "no_installs_at_run_time", "KNOWN_PASS_CRASHES",
           "create_predictor", "make_config", "pass_workarounds", "run_predictor", "stage_input",
           "check_input_size", "deploy_form", "export_program", "program_op_names", "RUNTIMES",
           "PRECISIONS", "RuntimeUnavailableError", "PrecisionUnsupportedError", "Session",
           "artifact_file", "check_session", "cpu_supports_bf16", "open_session",
           "reference_outputs", "register_runtime", "runtime_status"]
