// CSS files are bundled as text (esbuild's `text` loader) and injected by the widget.
declare module "*.css" {
  const text: string;
  export default text;
}
