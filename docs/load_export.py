from PIL import Image
from transformers import AutoModelForImageTextToText, AutoTokenizer, Qwen2VLImageProcessorPil

folder = "runs/export"                      # `medvqa export --output`, or a full fine-tuning run folder
model = AutoModelForImageTextToText.from_pretrained(folder).eval()
tokenizer = AutoTokenizer.from_pretrained(folder)                 # holds the chat template
processor = Qwen2VLImageProcessorPil.from_pretrained(folder)      # medvqa's image settings (min/max pixels)

def answer(image, question, max_new_tokens=32, **generate):   # generate: more model.generate() settings
    image, most = image.convert("RGB"), processor.size["longest_edge"]
    if image.width * image.height > most:   # medvqa's prepare_image: shrink to max_pixels (Lanczos) before the processor
        s = (most / (image.width * image.height)) ** 0.5
        image = image.resize((int(image.width * s), int(image.height * s)), Image.Resampling.LANCZOS)
    pixels = processor(images=[image], return_tensors="pt")
    turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
    n = int(pixels["image_grid_thw"].prod()) // processor.merge_size ** 2          # image tokens after the merger
    inputs = tokenizer(prompt.replace("<|image_pad|>", "<|image_pad|>" * n), return_tensors="pt")
    inputs["mm_token_type_ids"] = (inputs["input_ids"] == tokenizer.convert_tokens_to_ids("<|image_pad|>")).long()  # M-RoPE
    out = model.generate(**inputs, pixel_values=pixels["pixel_values"].to(model.dtype),
                         image_grid_thw=pixels["image_grid_thw"], do_sample=False, max_new_tokens=max_new_tokens, **generate)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

print(answer(Image.open("scan.png"), "Is there a lesion?"))
