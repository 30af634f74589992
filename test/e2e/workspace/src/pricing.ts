// Prices in cents; discounts and tax are applied in this order.
export const TAX_RATE = 0.21;
export const CURRENCY = 'EUR';

export interface LineItem {
  sku: string;
  unitPrice: number;
  quantity: number;
}

export function applyDiscount(price: number, percent: number): number {
  if (percent < 0 || percent > 100) throw new RangeError(`bad discount ${percent}`);
  return Math.round(price * (1 - percent / 100));
}

export function orderTotal(items: LineItem[], discountPercent = 0): number {
  const net = items.reduce((sum, item) => sum + item.unitPrice * item.quantity, 0);
  return Math.round(applyDiscount(net, discountPercent) * (1 + TAX_RATE));
}
