CUDA_PATH: dict[str, str] = {}
