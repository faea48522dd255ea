#include "train/run_config_table.hpp"

namespace ld::train {

namespace config_table {

#define LD_FIELD(member) [](RunConfig& c) -> Field { return &c.member; }

const std::vector<Row>& rows() {
  static const std::vector<Row> r = {
      {"data.path", LD_FIELD(data.path), Range::any, "",
       "Prepared dataset folder (its index.json, written by `liandan data prepare`). Required by `pretrain`.",
       {"dataset", "train_data"}},
      {"data.tokenizer", LD_FIELD(data.tokenizer), Range::any, "",
       "tokenizer.json, or a folder holding one; empty: the tokenizer the dataset was prepared with.", {}},

      {"data.train", LD_FIELD(data.train), Range::any, "",
       "finetune (task sft): the training conversations, Alpaca or chat JSONL (docs/finetuning.md).",
       {"train_file"}},
      {"data.val", LD_FIELD(data.val), Range::any, "",
       "finetune (task sft): held-out conversations for validation loss and exact match; empty: none.",
       {"validation_file", "eval_file"}},
      {"data.template", LD_FIELD(data.chat_template), Range::any, "chatml|tokenizer",
       "finetune (task sft): the chat template; tokenizer: the chat_template of the tokenizer's "
       "tokenizer_config.json.",
       {"chat_template"}},
      {"data.packing", LD_FIELD(data.packing), Range::any, "",
       "finetune (task sft): concatenate examples into full seq_len rows instead of padding each.", {"pack"}},
      {"data.labels", LD_FIELD(data.labels), Range::any, "",
       "finetune (task classify): the label set, label i being class i; []: the training file's labels, sorted.",
       {"label_list", "id2label"}},

      {"train.batch_size", LD_FIELD(train.batch_size), Range::positive, "", "Sequences per micro-batch.",
       {"micro_batch_size", "per_device_train_batch_size"}},
      {"train.seq_len", LD_FIELD(train.seq_len), Range::non_negative, "",
       "Tokens per sequence; 0: the model's context length (n_positions / max_position_embeddings).",
       {"block_size", "context_length", "max_seq_len", "sequence_length"}},
      {"train.grad_accum", LD_FIELD(train.grad_accum), Range::positive, "",
       "Micro-batches per optimizer step (tokens per step = batch_size x seq_len x grad_accum).",
       {"gradient_accumulation_steps", "grad_accumulation"}},
      {"train.max_steps", LD_FIELD(train.max_steps), Range::positive, "", "Optimizer steps to train for.",
       {"steps", "max_iters", "total_steps"}},
      {"train.lr", LD_FIELD(train.lr), Range::positive, "", "Peak learning rate (reached after the warm-up).",
       {"learning_rate", "max_lr"}},
      {"train.warmup_steps", LD_FIELD(train.warmup_steps), Range::non_negative, "",
       "Steps of linear warm-up from 0 to lr.", {"warmup", "warmup_iters"}},
      {"train.schedule", LD_FIELD(train.schedule), Range::any, "cosine|linear|constant",
       "Learning-rate decay after the warm-up, down to min_lr_ratio x lr at max_steps (constant: none).",
       {"lr_schedule", "lr_scheduler_type", "scheduler"}},
      {"train.min_lr_ratio", LD_FIELD(train.min_lr_ratio), Range::unit, "",
       "Final learning rate as a fraction of lr.", {"min_lr"}},
      {"train.weight_decay", LD_FIELD(train.weight_decay), Range::non_negative, "",
       "Decoupled weight decay (AdamW) on weight matrices; norms, biases and embeddings get none.", {"wd"}},
      {"train.beta1", LD_FIELD(train.beta1), Range::unit, "", "AdamW first-moment decay.", {"adam_beta1"}},
      {"train.beta2", LD_FIELD(train.beta2), Range::unit, "", "AdamW second-moment decay.", {"adam_beta2"}},
      {"train.eps", LD_FIELD(train.eps), Range::positive, "", "AdamW denominator epsilon.", {"adam_epsilon"}},
      {"train.optimizer", LD_FIELD(train.optimizer), Range::any, "adamw|sgd", "The optimizer.", {"optim"}},
      {"train.momentum", LD_FIELD(train.momentum), Range::unit, "", "SGD momentum (0: plain SGD).", {}},
      {"train.grad_clip", LD_FIELD(train.grad_clip), Range::non_negative, "",
       "Clip the global gradient L2 norm to this; 0: no clipping.", {"max_grad_norm", "clip_grad_norm"}},
      {"train.precision", LD_FIELD(train.precision), Range::any, "fp32|bf16|fp16",
       "Compute precision of the forward and backward; weights and optimizer state stay fp32.",
       {"dtype", "mixed_precision"}},
      {"train.bf16_weights", LD_FIELD(train.bf16_weights), Range::any, "",
       "precision bf16: keep each weight's bf16 copy for the products (fp32 master weights stay what is "
       "trained and saved), written by AdamW's fused update instead of rounded by every product. Same results; "
       "off on tensor- or pipeline-parallel ranks.",
       {}},
      {"train.stochastic_rounding", LD_FIELD(train.stochastic_rounding), Range::any, "",
       "precision bf16: round those bf16 copies stochastically (unbiased; a resume remakes them exactly) "
       "instead of to nearest.",
       {}},
      {"train.checkpointing", LD_FIELD(train.checkpointing), Range::any, "none|all|every_k",
       "Activation checkpointing: keep only each layer's input and recompute the rest in backward, for "
       "every layer (all) or every checkpoint_every_k-th layer (every_k).",
       {"activation_checkpointing", "gradient_checkpointing"}},
      {"train.checkpoint_every_k", LD_FIELD(train.checkpoint_every_k), Range::positive, "",
       "With checkpointing every_k: layers 0, k, 2k, ... are checkpointed.", {}},
      {"train.seed", LD_FIELD(train.seed), Range::non_negative, "",
       "Seed of the weight initialisation, data order and masking.", {}},
      {"train.threads", LD_FIELD(train.threads), Range::non_negative, "",
       "CPU threads; 0: OMP_NUM_THREADS or all cores.", {"num_threads"}},
      {"train.device", LD_FIELD(train.device), Range::any, "",
       "Where training runs: cpu, cuda (device 0) or cuda:N. Checkpoints and the saved model are written "
       "from host copies, so a run trained on a GPU resumes or loads on the CPU and back.",
       {"device"}},
      {"train.objective", LD_FIELD(train.objective), Range::any, "auto|clm|mlm",
       "Training objective; auto: clm (next token) for causal models, mlm (masked tokens) for bert.", {"task"}},
      {"train.mlm_probability", LD_FIELD(train.mlm_probability), Range::unit, "",
       "mlm: fraction of tokens selected for prediction (80% masked, 10% random, 10% kept).", {"mask_prob"}},
      {"train.mask_token_id", LD_FIELD(train.mask_token_id), Range::any, "",
       "mlm: the id that replaces masked tokens; -1: the tokenizer's [MASK] (or <mask>).", {"mask_id"}},

      {"eval.every", LD_FIELD(eval.every), Range::non_negative, "",
       "Evaluate on the held-out split every this many steps; 0: never.", {"eval_interval", "eval_steps"}},
      {"eval.batches", LD_FIELD(eval.batches), Range::positive, "", "Micro-batches per evaluation.",
       {"eval_iters"}},
      {"eval.samples", LD_FIELD(eval.samples), Range::any, "",
       "Prompts continued by greedy generation at each evaluation (a list of strings), to eyeball progress.",
       {"prompts"}},
      {"eval.sample_tokens", LD_FIELD(eval.sample_tokens), Range::positive, "",
       "New tokens generated per sample.", {"max_new_tokens"}},

      {"checkpoint.every", LD_FIELD(checkpoint.every), Range::non_negative, "",
       "Save a resumable checkpoint every this many steps; 0: only at the end.", {"save_steps", "save_every"}},
      {"checkpoint.keep_last", LD_FIELD(checkpoint.keep_last), Range::non_negative, "",
       "Checkpoints kept (older ones are deleted); 0: keep all.", {"save_total_limit", "keep"}},

      {"log.every", LD_FIELD(log.every), Range::positive, "",
       "Write a metrics line (loss, lr, tokens/s) every this many steps.", {"log_interval", "logging_steps"}},

      {"dist.zero", LD_FIELD(dist.zero), Range::non_negative, "",
       "Data parallel ZeRO stage: 0 all-reduces gradients, 1 also shards the optimizer state over the ranks, "
       "2 also the gradients (reduce-scatter, then all-gather the updated weights).", {"zero_stage"}},
      {"dist.bucket_mb", LD_FIELD(dist.bucket_mb), Range::positive, "",
       "Gradients are reduced in buckets of this many MiB, each as soon as backward has filled it.",
       {"bucket_cap_mb"}},
      {"dist.tp", LD_FIELD(dist.tp), Range::positive, "", "Tensor-parallel ranks (Megatron-style layers).",
       {"tensor_parallel", "tensor_model_parallel_size"}},
      {"dist.pp", LD_FIELD(dist.pp), Range::positive, "", "Pipeline stages.",
       {"pipeline_parallel", "pipeline_model_parallel_size"}},
      {"dist.schedule", LD_FIELD(dist.schedule), Range::any, "gpipe|1f1b",
       "Pipeline schedule of a step's micro-batches (train.grad_accum of them).", {"pipeline_schedule"}},

      {"finetune.method", LD_FIELD(finetune.method), Range::any, "full|lora|adapter|prompt",
       "finetune: what is trained: every weight (full), LoRA updates, Houlsby adapters, or a soft prompt.",
       {"peft_type"}},
      {"finetune.task", LD_FIELD(finetune.task), Range::any, "sft|clm|classify|multitask",
       "finetune: sft (instruction JSONL, loss on responses), clm (a prepared dataset, data.path), classify "
       "(text/label JSONL, a score head) or multitask (several sft datasets mixed, multitask.*).",
       {"task_type"}},

      {"multitask.train", LD_FIELD(multitask.train), Range::any, "",
       "finetune (task multitask): the training files, one per dataset (instruction JSONL).", {"datasets"}},
      {"multitask.val", LD_FIELD(multitask.val), Range::any, "",
       "finetune (task multitask): held-out files, one per dataset (\"\" = none); []: no evaluation.", {}},
      {"multitask.names", LD_FIELD(multitask.names), Range::any, "",
       "finetune (task multitask): the datasets' names, prefixing their metrics; []: the train files' stems.", {}},
      {"multitask.weights", LD_FIELD(multitask.weights), Range::any, "",
       "finetune (task multitask, sampling weights): one non-negative number per dataset; []: equal.", {}},
      {"multitask.sampling", LD_FIELD(multitask.sampling), Range::any, "weights|temperature",
       "finetune (task multitask): draw each micro-batch's dataset by weights or by size^(1/temperature).", {}},
      {"multitask.temperature", LD_FIELD(multitask.temperature), Range::positive, "",
       "finetune (task multitask, sampling temperature): T; 1: proportional to size, larger: flatter.", {}},

      {"continual.replay_from", LD_FIELD(continual.replay_from), Range::any, "",
       "finetune (continual): the earlier task's training data (JSONL of the run's task), or the earlier "
       "finetune run's folder (its data.train); used for replay and the EWC Fisher.", {"replay_data"}},
      {"continual.replay_fraction", LD_FIELD(continual.replay_fraction), Range::unit, "",
       "finetune (continual): the fraction of micro-batches drawn from replay_from (experience replay).",
       {"replay_ratio"}},
      {"continual.ewc_lambda", LD_FIELD(continual.ewc_lambda), Range::non_negative, "",
       "finetune (continual): EWC penalty strength (lambda/2 sum F (theta - theta*)^2); 0: no EWC.", {"ewc"}},
      {"continual.fisher_batches", LD_FIELD(continual.fisher_batches), Range::positive, "",
       "finetune (continual): batches of replay_from averaged into EWC's diagonal Fisher.", {}},
      {"continual.earlier_val", LD_FIELD(continual.earlier_val), Range::any, "",
       "finetune (continual): the earlier task's held-out data, evaluated at each evaluation (forgetting).", {}},

      {"lora.r", LD_FIELD(lora.r), Range::positive, "", "LoRA rank.", {"rank", "lora_r"}},
      {"lora.alpha", LD_FIELD(lora.alpha), Range::positive, "",
       "LoRA scale numerator: the update is scaled by alpha / r (alpha / sqrt(r) with use_rslora).",
       {"lora_alpha"}},
      {"lora.dropout", LD_FIELD(lora.dropout), Range::unit, "", "Dropout on the LoRA branch's input.",
       {"lora_dropout"}},
      {"lora.target_modules", LD_FIELD(lora.target_modules), Range::any, "",
       "Projections to adapt, by name or name suffix (PEFT's rule); []: the model type's default (gpt2 "
       "c_attn; llama family q_proj, v_proj); [all-linear]: every projection but the output head.",
       {"targets"}},
      {"lora.use_rslora", LD_FIELD(lora.use_rslora), Range::any, "", "rsLoRA: scale by alpha / sqrt(r).",
       {"rslora"}},

      {"adapter.width", LD_FIELD(adapter.width), Range::positive, "",
       "Houlsby adapter bottleneck width (after the attention and after the MLP of every block).",
       {"bottleneck", "reduction"}},
      {"adapter.nonlinearity", LD_FIELD(adapter.nonlinearity), Range::any, "gelu|relu",
       "The adapter's activation.", {"activation"}},

      {"prompt_tuning.num_virtual_tokens", LD_FIELD(prompt_tuning.num_virtual_tokens), Range::positive, "",
       "Learned virtual tokens placed before every sequence.", {"virtual_tokens"}},
      {"prompt_tuning.init", LD_FIELD(prompt_tuning.init), Range::any, "random|text",
       "Initialise the prompt randomly (N(0, 1)) or from the token embeddings of init_text.",
       {"prompt_tuning_init"}},
      {"prompt_tuning.init_text", LD_FIELD(prompt_tuning.init_text), Range::any, "",
       "init text: its token ids, repeated or cut to num_virtual_tokens.", {"prompt_tuning_init_text"}},

      {"output_dir", LD_FIELD(output_dir), Range::any, "",
       "The run folder: resolved.yaml, metrics.jsonl, checkpoints, the final model.", {"out_dir", "run_dir"}},
  };
  return r;
}

#undef LD_FIELD

}  // namespace config_table

const std::vector<ModelKeySpec>& model_config_keys() {
  using K = KeyType;
  const std::string llama_family = "llama,mistral,qwen2,mixtral";
  static const std::vector<ModelKeySpec> keys = {
      // gpt2
      {"n_layer", K::integer, false, "gpt2", "12", "Transformer blocks.", {"num_hidden_layers", "n_layers"}},
      {"n_head", K::integer, false, "gpt2", "12", "Attention heads.", {"num_attention_heads", "n_heads"}},
      {"n_embd", K::integer, false, "gpt2", "768", "Hidden size.", {"hidden_size", "d_model", "dim"}},
      {"n_positions", K::integer, false, "gpt2", "1024", "Context length (rows of the learned position table).",
       {"max_position_embeddings", "n_ctx", "block_size"}},
      {"n_inner", K::integer, true, "gpt2", "null (4 x n_embd)", "MLP width.", {"intermediate_size"}},
      {"layer_norm_epsilon", K::number, false, "gpt2", "1e-05", "LayerNorm epsilon.", {"layer_norm_eps"}},
      {"activation_function", K::string, false, "gpt2", "gelu_new",
       "MLP activation: gelu_new (tanh approximation), gelu_pytorch_tanh, gelu.", {"hidden_act"}},
      // llama family and bert
      {"hidden_size", K::integer, false, llama_family + ",bert", "required (bert: 768)", "Hidden size.",
       {"n_embd", "d_model", "dim"}},
      {"num_hidden_layers", K::integer, false, llama_family + ",bert", "required (bert: 12)",
       "Transformer blocks.", {"n_layer", "n_layers"}},
      {"num_attention_heads", K::integer, false, llama_family + ",bert", "required (bert: 12)",
       "Attention (query) heads.", {"n_head", "n_heads"}},
      {"num_key_value_heads", K::integer, false, llama_family, "num_attention_heads",
       "Key/value heads (grouped-query attention); must divide num_attention_heads.", {"n_kv_heads", "n_kv_head"}},
      {"intermediate_size", K::integer, false, llama_family + ",bert", "required (bert: 3072)",
       "MLP width (per expert for mixtral).", {"n_inner", "ffn_dim"}},
      {"max_position_embeddings", K::integer, false, llama_family + ",bert",
       "llama 2048, mistral and mixtral 131072, qwen2 32768, bert 512",
       "Context length (bert: rows of the learned position table).", {"n_positions", "n_ctx", "block_size"}},
      {"rms_norm_eps", K::number, false, llama_family, "llama, mistral, qwen2 1e-06; mixtral 1e-05",
       "RMSNorm epsilon.", {"norm_eps", "layer_norm_epsilon"}},
      {"rope_theta", K::number, false, llama_family, "10000 (mixtral 1e+06)", "RoPE base.", {"rope_base"}},
      {"hidden_act", K::string, false, llama_family + ",bert", "silu (bert: gelu)",
       "MLP activation (the llama family supports silu only; bert gelu, gelu_new).", {"activation_function"}},
      {"sliding_window", K::integer, true, "mistral,mixtral", "mistral 4096, mixtral null",
       "Attention window in tokens; null: none.", {"window"}},
      {"layer_norm_eps", K::number, false, "bert", "1e-12", "LayerNorm epsilon.", {"layer_norm_epsilon"}},
      {"type_vocab_size", K::integer, false, "bert", "2", "Token-type (segment) embeddings.", {}},
      {"pad_token_id", K::integer, false, "bert", "0", "Padding token id.", {}},
      // every type
      {"vocab_size", K::integer, false, "gpt2,bert," + llama_family, "gpt2 50257, bert 30522, else required",
       "Vocabulary size (the tokenizer's).", {"n_vocab"}},
      {"tie_word_embeddings", K::boolean, false, "gpt2,bert," + llama_family, "gpt2, bert true; else false",
       "The output projection is the token embedding.", {"tie_embeddings", "tied"}},
      {"bos_token_id", K::integer, false, "gpt2," + llama_family, "gpt2 50256, llama 1", "Beginning-of-text id.",
       {"bos_id"}},
      {"eos_token_id", K::integer, false, "gpt2," + llama_family, "gpt2 50256, llama 2", "End-of-text id.",
       {"eos_id"}},
      // mixture of experts: mixtral, or liandan's MoE GPT-2
      {"num_local_experts", K::integer, false, "gpt2,mixtral", "mixtral 8, gpt2 0 (dense)",
       "Experts per MoE layer (every layer's MLP becomes one).", {"num_experts", "n_experts"}},
      {"num_experts_per_tok", K::integer, false, "gpt2,mixtral", "2", "Experts each token is routed to (top-k).",
       {"top_k", "moe_top_k"}},
      {"router_aux_loss_coef", K::number, false, "gpt2,mixtral", "0.001", "Weight of the load-balancing loss.",
       {"aux_loss_coef"}},
      {"router_z_loss_coef", K::number, false, "gpt2,mixtral", "0", "Weight of the router z-loss.",
       {"z_loss_coef"}},
      {"moe_capacity_factor", K::number, false, "gpt2,mixtral", "0 (no limit)",
       "Expert capacity = factor x tokens x top_k / experts; slots over it are dropped.", {"capacity_factor"}},
  };
  return keys;
}

}  // namespace ld::train
