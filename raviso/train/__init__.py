"""Ray Train and Ray Data drivers: pretraining (`pretrain`), batch encoding (`encode`) and reading a
finished run (`runs`). May import core, data, io and models."""
