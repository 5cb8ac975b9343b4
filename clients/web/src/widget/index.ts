// The embeddable script: <script src=".../widget/widget.js"></script> defines
// window.BatonWidget; then BatonWidget.mount(element, {baseUrl, token | tokenProvider, ...}).
import { mount, tokenSubject } from "./widget.js";

export { mount, tokenSubject };
export type { WidgetHandle, WidgetOptions } from "./widget.js";

declare global {
  interface Window {
    BatonWidget: { mount: typeof mount };
  }
}

window.BatonWidget = { mount };
