"""The reference study: our GPT-2 and BERT checked against Hugging Face, in outputs, gradients and
as a drop-in replacement inside the shared training loop."""
