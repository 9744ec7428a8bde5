"""ttrl's `trl` engine: TRL's GRPOTrainer driven by a spec that ttrl writes (model, settings, the ordered
prompt list), with rewards from ttrl's reward service. Run as `python -m ttrl_trl.run SPEC.json`."""

REQUIRED_MODULES = ["torch", "transformers", "accelerate", "peft", "datasets", "trl"]
